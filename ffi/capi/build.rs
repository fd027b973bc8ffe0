//! Gives libmq.so its soname, `libmq.so.1`: the ABI version, which changes
//! only when a change breaks existing programs (additions keep it). One
//! linker argument instead of cargo-c as a build dependency.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmq.so.1");
    println!("cargo:rerun-if-changed=build.rs");
}
