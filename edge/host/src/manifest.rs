//! `spin.toml` (manifest version 2): the subset of Spin's manifest this host runs —
//! HTTP and Redis triggers, components with their source, key-value stores, variables and
//! allowed outbound hosts. Anything else the manifest asks for is refused at load, by
//! name, rather than silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid Spin manifest: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: u32,
    application: Application,
    #[serde(default)]
    variables: BTreeMap<String, VariableSpec>,
    #[serde(default)]
    trigger: Triggers,
    #[serde(default)]
    component: BTreeMap<String, ComponentSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Application {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    /// Application-wide trigger settings, e.g. the default Redis address.
    #[serde(default)]
    pub trigger: ApplicationTriggers,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApplicationTriggers {
    #[serde(default)]
    pub redis: Option<RedisDefaults>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisDefaults {
    pub address: String,
}

/// `[variables]` entry: a default, or required; `secret` keeps the value out of logs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableSpec {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Triggers {
    #[serde(default)]
    http: Vec<HttpTrigger>,
    #[serde(default)]
    redis: Vec<RedisTrigger>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    pub route: String,
    pub component: String,
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTrigger {
    /// Overrides `[application.trigger.redis] address`; may use `{{ variable }}`.
    #[serde(default)]
    pub address: Option<String>,
    /// May use `{{ variable }}`.
    pub channel: String,
    pub component: String,
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSpec {
    pub source: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// Component variables: literal values or templates over application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// `spin build` settings; this host runs built artifacts and ignores them.
    #[serde(default)]
    pub build: Option<toml::Value>,
}

/// A loaded manifest: validated, with component sources resolved against its folder.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub dir: PathBuf,
    pub application: Application,
    pub variables: BTreeMap<String, VariableSpec>,
    pub http: Vec<HttpTrigger>,
    pub redis: Vec<RedisTrigger>,
    pub components: BTreeMap<String, ComponentSpec>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, dir).map_err(|e| match e {
            ManifestError::Parse { source, .. } => ManifestError::Parse {
                path: path.to_owned(),
                source,
            },
            other => other,
        })
    }

    pub fn parse(text: &str, dir: PathBuf) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: PathBuf::from("spin.toml"),
            source: Box::new(e),
        })?;
        if raw.spin_manifest_version != 2 {
            return Err(ManifestError::Invalid(format!(
                "spin_manifest_version {} is not supported (only 2)",
                raw.spin_manifest_version
            )));
        }
        for name in raw.variables.keys() {
            check_variable_name(name)?;
        }
        for (id, spec) in &raw.variables {
            if spec.required && spec.default.is_some() {
                return Err(ManifestError::Invalid(format!(
                    "variable `{id}` is required and has a default; choose one"
                )));
            }
        }
        for (id, component) in &raw.component {
            for name in component.variables.keys() {
                check_variable_name(name)?;
            }
            for store in &component.key_value_stores {
                if store != "default" {
                    return Err(ManifestError::Invalid(format!(
                        "component `{id}` asks for key-value store `{store}`; this host provides only `default`"
                    )));
                }
            }
        }
        let known = |c: &str| raw.component.contains_key(c);
        for t in &raw.trigger.http {
            if !known(&t.component) {
                return Err(ManifestError::Invalid(format!(
                    "HTTP route `{}` names unknown component `{}`",
                    t.route, t.component
                )));
            }
            crate::routes::Route::parse(&t.route).map_err(ManifestError::Invalid)?;
        }
        for t in &raw.trigger.redis {
            if !known(&t.component) {
                return Err(ManifestError::Invalid(format!(
                    "Redis channel `{}` names unknown component `{}`",
                    t.channel, t.component
                )));
            }
            if t.address.is_none() && raw.application.trigger.redis.is_none() {
                return Err(ManifestError::Invalid(format!(
                    "Redis channel `{}` has no address and [application.trigger.redis] sets none",
                    t.channel
                )));
            }
        }
        Ok(Self {
            dir,
            application: raw.application,
            variables: raw.variables,
            http: raw.trigger.http,
            redis: raw.trigger.redis,
            components: raw.component,
        })
    }

    /// The component's wasm file, relative paths taken from the manifest's folder.
    pub fn source_path(&self, component: &ComponentSpec) -> PathBuf {
        let source = Path::new(&component.source);
        if source.is_absolute() {
            source.to_owned()
        } else {
            self.dir.join(source)
        }
    }

    /// The Redis address of a trigger: its own, else the application default (unresolved).
    pub fn redis_address<'a>(&'a self, trigger: &'a RedisTrigger) -> Option<&'a str> {
        trigger.address.as_deref().or(self
            .application
            .trigger
            .redis
            .as_ref()
            .map(|r| r.address.as_str()))
    }
}

/// Spin's rule for variable names: lowercase letters, digits and `_`, starting with a letter.
fn check_variable_name(name: &str) -> Result<(), ManifestError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ManifestError::Invalid(format!(
            "variable name `{name}` must be lowercase letters, digits and `_`, starting with a letter"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
spin_manifest_version = 2
[application]
name = "t"
[application.trigger.redis]
address = "redis://{{ redis_host }}"
[variables]
redis_host = { default = "127.0.0.1:6379" }
key = { required = true, secret = true }
[[trigger.http]]
route = "/v1/..."
component = "web"
[[trigger.redis]]
channel = "tessera.invalidate"
component = "inv"
[component.web]
source = "web.wasm"
key_value_stores = ["default"]
[component.web.variables]
key = "{{ key }}"
[component.inv]
source = "/abs/inv.wasm"
"#;

    #[test]
    fn parses_triggers_components_and_resolves_sources() {
        let m = Manifest::parse(MINIMAL, PathBuf::from("/app")).expect("valid");
        assert_eq!(m.http.len(), 1);
        assert_eq!(m.redis.len(), 1);
        assert_eq!(
            m.redis_address(&m.redis[0]),
            Some("redis://{{ redis_host }}")
        );
        assert_eq!(
            m.source_path(&m.components["web"]),
            PathBuf::from("/app/web.wasm")
        );
        assert_eq!(
            m.source_path(&m.components["inv"]),
            PathBuf::from("/abs/inv.wasm")
        );
        assert!(m.variables["key"].secret);
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        let unknown_component = MINIMAL.replace("component = \"web\"", "component = \"nope\"");
        assert!(Manifest::parse(&unknown_component, PathBuf::new())
            .is_err_and(|e| e.to_string().contains("unknown component `nope`")));
        let other_store = MINIMAL.replace("[\"default\"]", "[\"redis-store\"]");
        assert!(Manifest::parse(&other_store, PathBuf::new())
            .is_err_and(|e| e.to_string().contains("redis-store")));
        let bad_name = MINIMAL.replace("key = \"{{ key }}\"", "Key = \"x\"");
        assert!(Manifest::parse(&bad_name, PathBuf::new()).is_err());
        let v1 = MINIMAL.replace("spin_manifest_version = 2", "spin_manifest_version = 1");
        assert!(Manifest::parse(&v1, PathBuf::new()).is_err());
        let unknown_key = format!("{MINIMAL}\n[component.web.extra]\nx = 1\n");
        assert!(Manifest::parse(&unknown_key, PathBuf::new()).is_err());
    }
}
