//! The session's policy, read back from the `safe_migrations.*` GUCs (defined in
//! hook.c) and parsed by the same code the proxy and the CLI use.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::PgMemoryContexts;
use policy::settings::{parse_rule_list, SettingError, SETTINGS};
use policy::Settings;

unsafe extern "C" {
    /// hook.c: bumped by every assignment of a safe_migrations.* GUC.
    static sm_settings_generation: u64;
}

thread_local! {
    /// The settings as of a generation of the GUCs: most statements find them unchanged.
    static CACHED: RefCell<Option<(u64, Rc<Settings>)>> = const { RefCell::new(None) };
}

/// The effective settings of this session, parsed again only after a GUC changed.
pub fn current_settings() -> Result<Rc<Settings>, SettingError> {
    // SAFETY: a plain read of hook.c's u64 global on the backend's only thread; GUC
    // assignments, which bump it, run on that thread too, never during this read.
    let generation = unsafe { sm_settings_generation };
    if let Some(settings) = CACHED.with_borrow(|cached| {
        cached
            .as_ref()
            .filter(|(seen, _)| *seen == generation)
            .map(|(_, settings)| settings.clone())
    }) {
        return Ok(settings);
    }
    let settings = Rc::new(read_settings()?);
    CACHED.set(Some((generation, settings.clone())));
    Ok(settings)
}

fn read_settings() -> Result<Settings, SettingError> {
    let mut settings = Settings::default();
    for spec in SETTINGS {
        let name = CString::new(format!("safe_migrations.{}", spec.name)).expect("setting names have no NUL");
        // SAFETY: `name` is a live NUL-terminated string; with missing_ok GetConfigOption
        // returns NULL for an undefined variable instead of raising.
        let value = unsafe { pg_sys::GetConfigOption(name.as_ptr(), true, false) };
        if value.is_null() {
            continue;
        }
        // SAFETY: non-NULL, so the GUC's current value, a NUL-terminated string that stays
        // put until the GUC is next assigned; it is only read, by `apply` (pure Rust), in
        // this iteration, before anything can assign a GUC.
        let value = unsafe { CStr::from_ptr(value) }.to_string_lossy();
        settings.apply(spec.name, &value)?;
    }
    Ok(settings)
}

/// check_hook of `safe_migrations.allow` (hook.c): is `value` a list of known rule ids?
/// On failure `*why` is a palloc'd explanation naming the accepted ids.
///
/// # Safety
/// `value` is a NUL-terminated string and `why` is valid for a write, both for the call;
/// a memory context is current (true inside a GUC check hook).
#[pgrx::pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn sm_rule_list_is_valid(value: *const c_char, why: *mut *mut c_char) -> bool {
    // SAFETY: hook.c passes the proposed GUC value, non-NULL (its check hook returns early
    // for NULL), a NUL-terminated string valid for the call, and only read during it.
    let value = unsafe { CStr::from_ptr(value) }.to_string_lossy();
    match parse_rule_list(&value) {
        Ok(_) => true,
        Err(reason) => {
            // SAFETY: `why` points to hook.c's local for the result (this function's
            // contract); CurrentMemoryContext is valid while a GUC is being set, and the
            // copy lives there until hook.c's GUC_check_errdetail has formatted it.
            unsafe { *why = PgMemoryContexts::CurrentMemoryContext.pstrdup(&reason.replace('\0', "")) };
            false
        }
    }
}
