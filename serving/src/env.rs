//! Settings from the process environment: a variable that is set but whose value is not
//! UTF-8 is an error naming it, never read as unset (which would quietly give it its
//! default, e.g. a key or a limit the operator believes is set).

use std::cell::RefCell;
use std::env::VarError;

use tessera_domain::settings::ConfigError;

/// A variable the process read that is set to bytes that are not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotUnicode {
    pub name: String,
}

impl From<NotUnicode> for ConfigError {
    fn from(e: NotUnicode) -> Self {
        Self {
            name: e.name,
            // It may be a secret: its bytes are not shown.
            value: "(not shown)".to_owned(),
            reason: "the value is not valid UTF-8".to_owned(),
        }
    }
}

/// A settings reader's lookup: the value of the variable `name`, if set.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Runs `read` (a settings reader taking a lookup) on the process environment. The first
/// variable it looked up that is set but not UTF-8 fails the whole read, whatever `read`
/// made of it as unset.
pub fn read_env<T, E: From<NotUnicode>>(
    read: impl FnOnce(Lookup<'_>) -> Result<T, E>,
) -> Result<T, E> {
    let not_unicode: RefCell<Option<String>> = RefCell::new(None);
    let lookup = |name: &str| match std::env::var(name) {
        Ok(value) => Some(value),
        Err(VarError::NotPresent) => None,
        Err(VarError::NotUnicode(_)) => {
            not_unicode
                .borrow_mut()
                .get_or_insert_with(|| name.to_owned());
            None
        }
    };
    let read = read(&lookup);
    match not_unicode.into_inner() {
        Some(name) => Err(NotUnicode { name }.into()),
        None => read,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt as _;

    use super::*;

    /// Names no other test reads (tests share the process environment).
    const BYTES: &str = "TESSERA_SERVING_ENV_TEST_BYTES";
    const TEXT: &str = "TESSERA_SERVING_ENV_TEST_TEXT";
    const UNSET: &str = "TESSERA_SERVING_ENV_TEST_UNSET";

    fn read(names: &[&str]) -> Result<Vec<Option<String>>, ConfigError> {
        read_env(|lookup| Ok(names.iter().map(|name| lookup(name)).collect()))
    }

    #[test]
    fn a_value_that_is_not_utf8_is_an_error_naming_it_not_an_unset_variable() {
        std::env::set_var(BYTES, std::ffi::OsStr::from_bytes(b"12\xff"));
        std::env::set_var(TEXT, "42");
        assert_eq!(
            read(&[TEXT, UNSET]).expect("text and unset"),
            vec![Some("42".to_owned()), None]
        );
        let error = read(&[TEXT, BYTES, UNSET]).expect_err("not UTF-8");
        assert_eq!(error.name, BYTES);
        assert!(!error.to_string().contains("12"), "{error}");
        assert!(error.to_string().contains("not valid UTF-8"), "{error}");
    }
}
