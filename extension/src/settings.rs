//! The session's policy, read back from the `safe_migrations.*` GUCs (defined in
//! hook.c) and parsed by the same code the proxy and the CLI use.

use std::ffi::{c_char, CStr, CString};

use pgrx::pg_sys;
use pgrx::PgMemoryContexts;
use policy::settings::{parse_rule_list, SettingError, SETTINGS};
use policy::Settings;

/// The effective settings of this session.
pub fn current_settings() -> Result<Settings, SettingError> {
    let mut settings = Settings::default();
    for spec in SETTINGS {
        let name = CString::new(format!("safe_migrations.{}", spec.name)).expect("setting names have no NUL");
        // GetConfigOption returns a pointer into the GUC's current value, or NULL
        // when the variable is not defined (missing_ok).
        let value = unsafe { pg_sys::GetConfigOption(name.as_ptr(), true, false) };
        if value.is_null() {
            continue;
        }
        let value = unsafe { CStr::from_ptr(value) }.to_string_lossy();
        settings.apply(spec.name, &value)?;
    }
    Ok(settings)
}

/// check_hook of `safe_migrations.allow` (hook.c): is `value` a list of known rule ids?
/// On failure `*why` is a palloc'd explanation naming the accepted ids.
#[pgrx::pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn sm_rule_list_is_valid(value: *const c_char, why: *mut *mut c_char) -> bool {
    // hook.c passes the proposed GUC value (non-NULL) and a pointer to a local.
    let value = unsafe { CStr::from_ptr(value) }.to_string_lossy();
    match parse_rule_list(&value) {
        Ok(_) => true,
        Err(reason) => {
            // CurrentMemoryContext is valid while a GUC is being set.
            unsafe { *why = PgMemoryContexts::CurrentMemoryContext.pstrdup(&reason.replace('\0', "")) };
            false
        }
    }
}
