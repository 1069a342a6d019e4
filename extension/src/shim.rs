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
    // SAFETY: hook.c's function takes no arguments; called from _PG_init on the backend's
    // main thread. The closure only makes the call (nothing to drop, nothing to panic), as
    // pg_guard_ffi_boundary requires; an ERROR comes back as a Rust panic.
    unsafe { pg_guard_ffi_boundary(|| raw::sm_define_settings()) }
}

/// Install the ProcessUtility hook, chaining the previous one (once, from _PG_init).
pub fn install_hook() {
    // SAFETY: hook.c's function takes no arguments; called from _PG_init on the main thread
    // while shared_preload_libraries load. The closure only makes the call, as
    // pg_guard_ffi_boundary requires.
    unsafe { pg_guard_ffi_boundary(|| raw::sm_install_hook()) }
}

/// Was the hook installed in this backend?
pub fn guard_active() -> bool {
    // SAFETY: hook.c's function only returns a static bool. The closure only makes the
    // call, as pg_guard_ffi_boundary requires.
    unsafe { pg_guard_ffi_boundary(|| raw::sm_guard_active()) }
}

/// Every FuncCall node in a raw expression, and whether it contains a subquery.
///
/// The List is new, in the current memory context; its elements point into `expr`.
///
/// # Safety
/// `expr` is NULL or a raw expression tree built by the parser, alive for the call.
pub unsafe fn raw_function_calls(expr: *mut pg_sys::Node) -> (*mut pg_sys::List, bool) {
    let mut has_sublink = false;
    // SAFETY: `expr` is NULL or a parser-built raw expression (this function's contract),
    // which raw_expression_tree_walker only reads; `has_sublink` is a live local the C side
    // writes once. The closure only makes the call (it borrows the local; nothing to drop,
    // nothing to panic), as pg_guard_ffi_boundary requires.
    let calls = unsafe { pg_guard_ffi_boundary(|| raw::sm_raw_function_calls(expr, &mut has_sublink)) };
    (calls, has_sublink)
}

/// pg_get_constraintdef() of each validated CHECK constraint of `relid`, as a List of C strings.
pub fn validated_check_definitions(relid: pg_sys::Oid) -> *mut pg_sys::List {
    // SAFETY: the C side takes any OID (no relcache entry -> NIL). The closure only makes
    // the call, as pg_guard_ffi_boundary requires.
    unsafe { pg_guard_ffi_boundary(|| raw::sm_validated_check_definitions(relid)) }
}
