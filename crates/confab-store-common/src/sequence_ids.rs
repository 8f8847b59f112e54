//! The sequence id of each live conversation's newest message, as the writer last wrote it,
//! so that an append to a busy thread need not read it back (on SQLite two b-tree descents,
//! the conversation's row and its newest message; on PostgreSQL an index descent and a heap
//! fetch per message, a quarter of the append's execution at 1,000 threads).
//!
//! Only a store's writer inserts messages (setting the entry of each conversation it inserts
//! into) and marks conversations deleted (which forgets the entry), so an entry is what the
//! database holds. A rollback, of the batch or of one job's savepoint, may undo appends and deletions
//! the entries followed: it clears them all, and the next append reads again. Where several
//! writers share the database (PostgreSQL nodes), a writer that finds another one wrote since
//! its own last batch clears them too.

use std::collections::HashMap;

/// The newest sequence id of the live conversations the writer appended to, by conversation
/// key (its 16 bytes).
#[derive(Default)]
pub struct SequenceIds {
    newest: HashMap<[u8; 16], i64>,
}

impl SequenceIds {
    /// Conversations remembered at most (~40 bytes each); past it the map starts over.
    pub const CAPACITY: usize = 65_536;

    pub fn get(&self, conversation: &[u8; 16]) -> Option<i64> {
        self.newest.get(conversation).copied()
    }

    pub fn set(&mut self, conversation: [u8; 16], sequence_id: i64) {
        if self.newest.len() >= Self::CAPACITY && !self.newest.contains_key(&conversation) {
            self.newest.clear();
        }
        self.newest.insert(conversation, sequence_id);
    }

    pub fn forget(&mut self, conversation: &[u8; 16]) {
        self.newest.remove(conversation);
    }

    pub fn clear(&mut self) {
        self.newest.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_sequence_ids_stay_bounded() {
        let mut ids = SequenceIds::default();
        for n in 0..SequenceIds::CAPACITY as u128 {
            ids.set(n.to_be_bytes(), 1);
        }
        ids.set(0u128.to_be_bytes(), 2);
        assert_eq!(
            ids.newest.len(),
            SequenceIds::CAPACITY,
            "an update adds nothing"
        );
        ids.set(u128::MAX.to_be_bytes(), 1);
        assert_eq!(ids.newest.len(), 1, "a new one past the bound starts over");
        assert_eq!(ids.get(&u128::MAX.to_be_bytes()), Some(1));
    }
}
