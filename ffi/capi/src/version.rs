//! The library's version: macros for compile time, functions for run time.
//! The macros are literals (cbindgen writes only literals); a compile-time
//! assertion below, and `tests/header.rs`, hold them to `CARGO_PKG_VERSION`.

use std::ffi::c_char;

/// Major version of the library (the header's).
pub const MQ_VERSION_MAJOR: u32 = 0;
/// Minor version of the library (the header's).
pub const MQ_VERSION_MINOR: u32 = 1;
/// Patch version of the library (the header's).
pub const MQ_VERSION_PATCH: u32 = 0;
/// The ABI version: the `1` of the soname `libmq.so.1`. Within one ABI
/// version changes are additive only (new functions, statuses, config keys,
/// fields appended to `mq_message_view_t`).
// Only C reads it, through the header.
#[allow(dead_code)]
pub const MQ_ABI_VERSION: u32 = 1;

/// Parses a version component at compile time.
const fn number(s: &str) -> u32 {
    let bytes = s.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i].is_ascii_digit(), "a version component is a number");
        n = n * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    n
}

const _: () = assert!(
    MQ_VERSION_MAJOR == number(env!("CARGO_PKG_VERSION_MAJOR"))
        && MQ_VERSION_MINOR == number(env!("CARGO_PKG_VERSION_MINOR"))
        && MQ_VERSION_PATCH == number(env!("CARGO_PKG_VERSION_PATCH")),
    "MQ_VERSION_* must equal the package version (Cargo.toml)"
);

/// The version of the library linked at run time:
/// `(MAJOR << 16) | (MINOR << 8) | PATCH`. Compare with the macros to see
/// whether the header and the library agree; bindings check
/// `mq_version() >> 16` when they load.
///
/// Thread: any.
///
/// # Safety
///
/// None.
#[no_mangle]
pub unsafe extern "C" fn mq_version() -> u32 {
    ffi!(pure: Ok((MQ_VERSION_MAJOR << 16) | (MQ_VERSION_MINOR << 8) | MQ_VERSION_PATCH))
}

/// The version as text, `"0.1.0"`. Never NULL.
///
/// Thread: any. Ownership: static storage, never freed.
///
/// # Safety
///
/// None.
#[no_mangle]
pub unsafe extern "C" fn mq_version_str() -> *const c_char {
    ffi!(pure: Ok(concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast::<c_char>()))
}
