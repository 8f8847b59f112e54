//! `--postgres URL`: confab keeps its data in a schema of its own in that database, made for
//! the run and dropped after it, so that a run starts empty and leaves nothing behind.

use anyhow::Context;

/// A scratch schema; dropped (with everything in it) on drop.
pub struct ScratchSchema {
    base: String,
    name: String,
}

impl ScratchSchema {
    /// Creates `confab_bench_<pid>_<ms>` in the database at `url`.
    pub fn create(url: &str) -> anyhow::Result<Self> {
        let name = format!(
            "confab_bench_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        );
        run_sql(url, format!("CREATE SCHEMA {name}"))
            .with_context(|| format!("creating the schema {name} for the run"))?;
        Ok(Self {
            base: url.to_owned(),
            name,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL that puts confab's tables in this schema: the base URL with
    /// `options=-c search_path=<schema>` added.
    pub fn url(&self) -> String {
        let separator = if self.base.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.base, self.name
        )
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        if let Err(err) = run_sql(&self.base, format!("DROP SCHEMA {} CASCADE", self.name)) {
            eprintln!(
                "confab-bench: warning: could not drop the schema {}: {err:#}",
                self.name
            );
        }
    }
}

/// Runs SQL on a connection of its own, on a thread of its own (the synchronous client must not
/// run on an async worker).
fn run_sql(url: &str, sql: String) -> anyhow::Result<()> {
    let config: postgres::Config = url.parse().context("parsing the PostgreSQL URL")?;
    std::thread::spawn(move || -> anyhow::Result<()> {
        let mut client = config
            .connect(postgres::NoTls)
            .context("connecting to PostgreSQL")?;
        client.batch_execute(&sql)?;
        Ok(())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the PostgreSQL thread panicked"))?
}
