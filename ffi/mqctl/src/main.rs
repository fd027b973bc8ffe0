//! `mqctl`: the command-line tool of mq. Everything is in the library; this
//! wires it to the process: its arguments, its environment, its standard
//! streams and a panic hook that keeps a panic to one line.

use std::process::ExitCode;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(mqctl::panic_hook));
    let console = mqctl::Console::stdio();
    ExitCode::from(mqctl::run(
        std::env::args_os(),
        |key| std::env::var(key).ok(),
        &console,
    ))
}
