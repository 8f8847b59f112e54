//! The blob port: where uploaded media bytes live (the filesystem by default; S3 later). Keys
//! are chosen by the core (`<2 hex>/<32 hex>`, see `media.rs`); a blob store never interprets
//! them beyond using them as names.
//!
//! Writes and reads stream in chunks, so a 100 MB video is never held in memory twice: a write
//! is a [`BlobWriter`] fed chunk by chunk and then committed (atomically: a reader sees the whole
//! blob or nothing), a read is a [`BlobReader`] answering chunks.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BlobError {
    /// The key is not one this store accepts (never the case for keys the core makes).
    #[error("invalid blob key")]
    InvalidKey,
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
}

pub type BlobResult<T> = Result<T, BlobError>;

/// A blob being written. Nothing is visible under the key until [`BlobWriter::commit`];
/// dropping the writer without committing (or [`BlobWriter::abort`]) leaves nothing behind.
#[async_trait]
pub trait BlobWriter: Send {
    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()>;
    /// Makes the blob durable and visible under its key (replacing any blob there).
    async fn commit(self: Box<Self>) -> BlobResult<()>;
    /// Throws the partial blob away.
    async fn abort(self: Box<Self>);
}

/// A stored blob being read.
#[async_trait]
pub trait BlobReader: Send {
    /// The blob's size in bytes.
    fn size(&self) -> u64;
    /// The next chunk; `None` at the end.
    async fn next_chunk(&mut self) -> BlobResult<Option<Bytes>>;
}

/// Blob storage.
#[async_trait]
pub trait Blobs: Send + Sync + 'static {
    /// Starts writing the blob `key`. The content type is a hint for stores that keep one (S3);
    /// the core keeps its own copy in the media record.
    async fn put(&self, key: &str, content_type: &str) -> BlobResult<Box<dyn BlobWriter>>;
    /// Opens the blob `key`; `None` if there is none.
    async fn get(&self, key: &str) -> BlobResult<Option<Box<dyn BlobReader>>>;
    /// Deletes the blob `key`; answers whether there was one.
    async fn delete(&self, key: &str) -> BlobResult<bool>;
    async fn exists(&self, key: &str) -> BlobResult<bool>;
}

/// Blobs in a map in memory: the default of a core built without blob storage, and what tests
/// use. Each blob is held once (as `Bytes`, shared by its readers).
#[derive(Clone, Default)]
pub struct MemoryBlobs {
    blobs: Arc<Mutex<HashMap<String, Bytes>>>,
}

/// Chunks a memory blob is read in.
const MEMORY_CHUNK: usize = 64 * 1024;

struct MemoryWriter {
    key: String,
    data: Vec<u8>,
    blobs: Arc<Mutex<HashMap<String, Bytes>>>,
}

#[async_trait]
impl BlobWriter for MemoryWriter {
    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()> {
        self.data.extend_from_slice(chunk);
        Ok(())
    }

    async fn commit(self: Box<Self>) -> BlobResult<()> {
        let this = *self;
        this.blobs.lock().insert(this.key, Bytes::from(this.data));
        Ok(())
    }

    async fn abort(self: Box<Self>) {}
}

struct MemoryReader {
    data: Bytes,
}

#[async_trait]
impl BlobReader for MemoryReader {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }

    async fn next_chunk(&mut self) -> BlobResult<Option<Bytes>> {
        if self.data.is_empty() {
            return Ok(None);
        }
        let take = self.data.len().min(MEMORY_CHUNK);
        Ok(Some(self.data.split_to(take)))
    }
}

#[async_trait]
impl Blobs for MemoryBlobs {
    async fn put(&self, key: &str, _content_type: &str) -> BlobResult<Box<dyn BlobWriter>> {
        Ok(Box::new(MemoryWriter {
            key: key.to_owned(),
            data: Vec::new(),
            blobs: self.blobs.clone(),
        }))
    }

    async fn get(&self, key: &str) -> BlobResult<Option<Box<dyn BlobReader>>> {
        Ok(self
            .blobs
            .lock()
            .get(key)
            .cloned()
            .map(|data| Box::new(MemoryReader { data }) as Box<dyn BlobReader>))
    }

    async fn delete(&self, key: &str) -> BlobResult<bool> {
        Ok(self.blobs.lock().remove(key).is_some())
    }

    async fn exists(&self, key: &str) -> BlobResult<bool> {
        Ok(self.blobs.lock().contains_key(key))
    }
}
