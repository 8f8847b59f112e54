//! Size and count limits, as the cloud service has them (NOTES.md, "limits of the cloud service").

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of UTF-8 in a message's content.
    pub max_message_bytes: usize,
    /// Bytes of a message's metadata (keys and values).
    pub max_message_metadata_bytes: usize,
    /// Bytes of a thread's or a participant's metadata (keys and values).
    pub max_metadata_bytes: usize,
    pub max_participants: usize,
    /// Participants in one create or add request.
    pub max_participants_per_batch: usize,
    pub max_page_size: usize,
    pub max_topic_chars: usize,
    pub max_display_name_chars: usize,
    /// Accepted `deleteThreadAfterDays` (the cloud's 30–90).
    pub retention_days: std::ops::RangeInclusive<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 28 * 1024,
            max_message_metadata_bytes: 28 * 1024,
            max_metadata_bytes: 1024,
            max_participants: 250,
            max_participants_per_batch: 200,
            max_page_size: 200,
            max_topic_chars: 1024,
            max_display_name_chars: 256,
            retention_days: 30..=90,
        }
    }
}

/// The size of a metadata map as the limits count it: the bytes of its keys and values.
pub fn metadata_bytes(metadata: &crate::model::Metadata) -> usize {
    metadata.iter().map(|(k, v)| k.len() + v.len()).sum()
}
