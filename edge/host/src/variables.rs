//! Spin variables: application variables take their value from `SPIN_VARIABLE_<NAME>` in
//! the environment, else the manifest default; a required one without a value stops the
//! host at start, not at the first request. Component variables and trigger settings are
//! templates over them (`"{{ ledger_url }}"`), resolved once at load.

use std::collections::{BTreeMap, HashMap};

use crate::manifest::Manifest;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VariableError {
    #[error("variable `{0}` is required: set SPIN_VARIABLE_{upper}", upper = .0.to_uppercase())]
    Missing(String),
    #[error("`{template}` refers to undefined variable `{name}`")]
    Undefined { template: String, name: String },
    #[error("`{0}` has an unterminated `{{{{`")]
    Unterminated(String),
    #[error("environment variable {0} is set but its value is not valid UTF-8")]
    NotUnicode(String),
}

impl From<tessera_serving::NotUnicode> for VariableError {
    fn from(e: tessera_serving::NotUnicode) -> Self {
        Self::NotUnicode(e.name)
    }
}

/// Resolved application variables; secret values are never printed.
#[derive(Clone, Default)]
pub struct AppVariables {
    values: HashMap<String, String>,
}

impl std::fmt::Debug for AppVariables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl AppVariables {
    /// Resolve from the process environment (a variable set to bytes that are not UTF-8 is
    /// an error, never read as unset).
    pub fn from_env(manifest: &Manifest) -> Result<Self, VariableError> {
        tessera_serving::read_env(|lookup| Self::resolve(manifest, lookup))
    }

    pub fn resolve(
        manifest: &Manifest,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, VariableError> {
        let mut values = HashMap::new();
        for (name, spec) in &manifest.variables {
            let from_env = lookup(&format!("SPIN_VARIABLE_{}", name.to_uppercase()));
            match from_env.or_else(|| spec.default.clone()) {
                Some(value) => {
                    values.insert(name.clone(), value);
                }
                None if spec.required => return Err(VariableError::Missing(name.clone())),
                // Declared without default and not required: undefined until provided.
                None => {}
            }
        }
        Ok(Self { values })
    }

    /// Expand `{{ name }}` references.
    pub fn expand(&self, template: &str) -> Result<String, VariableError> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| VariableError::Unterminated(template.to_owned()))?;
            let name = after[..end].trim();
            let value = self
                .values
                .get(name)
                .ok_or_else(|| VariableError::Undefined {
                    template: template.to_owned(),
                    name: name.to_owned(),
                })?;
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// A component's variables with their templates expanded.
    pub fn for_component(
        &self,
        variables: &BTreeMap<String, String>,
    ) -> Result<HashMap<String, String>, VariableError> {
        variables
            .iter()
            .map(|(name, template)| Ok((name.clone(), self.expand(template)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
spin_manifest_version = 2
[application]
name = "t"
[variables]
ledger_url = { default = "http://127.0.0.1:4000" }
edge_key = { required = true, secret = true }
"#,
            ".".into(),
        )
        .expect("manifest")
    }

    #[test]
    fn environment_overrides_defaults_and_required_must_be_set() {
        let m = manifest();
        assert_eq!(
            AppVariables::resolve(&m, |_| None).err(),
            Some(VariableError::Missing("edge_key".into()))
        );
        let vars = AppVariables::resolve(&m, |k| match k {
            "SPIN_VARIABLE_EDGE_KEY" => Some("s3cret".into()),
            "SPIN_VARIABLE_LEDGER_URL" => Some("http://ledger:4000".into()),
            _ => None,
        })
        .expect("resolved");
        assert_eq!(
            vars.expand("{{ ledger_url }}/v1 key={{edge_key}}"),
            Ok("http://ledger:4000/v1 key=s3cret".into())
        );
        assert!(!format!("{vars:?}").contains("s3cret"));
    }

    #[test]
    fn bad_templates_are_errors() {
        let vars = AppVariables::resolve(&manifest(), |_| Some("x".into())).expect("resolved");
        assert!(matches!(
            vars.expand("{{ nope }}"),
            Err(VariableError::Undefined { .. })
        ));
        assert!(matches!(
            vars.expand("{{ ledger_url"),
            Err(VariableError::Unterminated(_))
        ));
        assert_eq!(vars.expand("plain"), Ok("plain".into()));
    }
}
