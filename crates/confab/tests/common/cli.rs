//! Runs the `confab` command against a test server, as an admin would.

/// `confab <args>` with the server's connection string in `CONFAB_CONNECTION_STRING`, run off
/// the async threads; answers what it printed and how it exited.
pub async fn confab(connection_string: &str, args: &[&str]) -> std::process::Output {
    let connection_string = connection_string.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_confab"))
            .args(&args)
            .env("CONFAB_CONNECTION_STRING", connection_string)
            .output()
            .expect("run confab")
    })
    .await
    .expect("the confab command's thread")
}
