//! `mqctl`: the command-line tool of mq. Everything is in the library; this
//! wires it to the process: its arguments, its environment, its standard
//! streams and a panic hook that keeps a panic to one line.

use std::process::ExitCode;

/// The client decodes every pulled message into owned fields on its I/O
/// threads and the application frees them on its own: glibc's malloc spent
/// over a third of a backlog read on that hand-off (perf), mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(mqctl::panic_hook));
    let console = mqctl::Console::stdio();
    ExitCode::from(mqctl::run(
        std::env::args_os(),
        |key| std::env::var(key).ok(),
        &console,
    ))
}
