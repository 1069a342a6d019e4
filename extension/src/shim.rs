//! The C functions of hook.c that Rust calls, each behind pgrx's FFI boundary guard so
//! that an ERROR raised in C unwinds Rust frames properly instead of longjmp'ing over them.

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;

mod raw {
    use pgrx::pg_sys;

    unsafe extern "C-unwind" {
        pub fn sm_define_settings();
        pub fn sm_install_hook();
        pub fn sm_guard_active() -> bool;
        pub fn sm_raw_function_calls(expr: *mut pg_sys::Node, has_sublink: *mut bool) -> *mut pg_sys::List;
        pub fn sm_validated_check_definitions(relid: pg_sys::Oid) -> *mut pg_sys::List;
    }
}

/// Define the safe_migrations.* GUCs (once, from _PG_init).
pub fn define_settings() {
    // Called on the backend's main thread while the library loads.
    unsafe { pg_guard_ffi_boundary(|| raw::sm_define_settings()) }
}

/// Install the ProcessUtility hook, chaining the previous one (once, from _PG_init).
pub fn install_hook() {
    // Called on the backend's main thread while shared_preload_libraries load.
    unsafe { pg_guard_ffi_boundary(|| raw::sm_install_hook()) }
}

/// Was the hook installed in this backend?
pub fn guard_active() -> bool {
    // Reads a C bool.
    unsafe { pg_guard_ffi_boundary(|| raw::sm_guard_active()) }
}

/// Every FuncCall node in a raw expression, and whether it contains a subquery.
///
/// # Safety
/// `expr` is NULL or a raw expression tree built by the parser.
pub unsafe fn raw_function_calls(expr: *mut pg_sys::Node) -> (*mut pg_sys::List, bool) {
    let mut has_sublink = false;
    let calls = unsafe { pg_guard_ffi_boundary(|| raw::sm_raw_function_calls(expr, &mut has_sublink)) };
    (calls, has_sublink)
}

/// pg_get_constraintdef() of each validated CHECK constraint of `relid`, as a List of C strings.
pub fn validated_check_definitions(relid: pg_sys::Oid) -> *mut pg_sys::List {
    // The C side tolerates any OID (NULL relcache entry -> NIL).
    unsafe { pg_guard_ffi_boundary(|| raw::sm_validated_check_definitions(relid)) }
}
