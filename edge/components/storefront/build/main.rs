//! The storefront's build script: embeds the web app (`storefront/app/` at the repository
//! root) in the component, so nothing is read from disk or fetched at run time.
//!
//! 1. [`walk`]: every file under the app's folder, sorted by path, with its content type
//!    (an extension without one fails the build), within the bounds below.
//! 2. The build id: the first 12 hex digits of SHA-256 over every (path, bytes), so any
//!    change to any file moves every asset URL (`/assets/<build_id>/…`).
//! 3. `index.html`: `{{assets}}` becomes `/assets/<build_id>` (relative imports in ES
//!    modules then resolve under the same prefix).
//! 4. [`compress`]: gzip and brotli of each file, kept only when smaller.
//! 5. [`emit`]: the representations into `OUT_DIR/site/` and `OUT_DIR/site.rs`, a
//!    `tessera_edge_cache::storefront::Site` the component `include!`s.
//!
//! Build-time failures are reported with the file and the fix, and fail the build.

mod compress;
mod emit;
mod walk;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The app, relative to this crate (`edge/components/storefront`).
const APP_DIR: &str = "../../../storefront/app";
/// The page whose `{{assets}}` placeholder becomes the assets' URL prefix.
const INDEX: &str = "index.html";
/// The placeholder in `index.html`.
const ASSETS_PLACEHOLDER: &str = "{{assets}}";
/// Hex digits of the build id: 48 bits, plenty to tell builds apart.
const BUILD_ID_HEX_LEN: usize = 12;
/// Hex digits of an ETag: 64 bits of the file's SHA-256.
const ETAG_HEX_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0} is not set: run the build through cargo")]
    Env(&'static str),
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot compress {path} ({coding})")]
    Compress {
        path: String,
        coding: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    App(#[from] walk::AppError),
    #[error("the storefront app has no {INDEX}: it is the page every route answers with")]
    NoIndex,
    #[error("{INDEX} is not UTF-8 text: its `{ASSETS_PLACEHOLDER}` cannot be replaced")]
    IndexNotUtf8,
    #[error("{0} is not UTF-8: the generated code names it in a string literal")]
    NotUtf8(PathBuf),
}

/// One file as served: its path, content type and the bytes of each coding.
pub struct Prepared {
    pub path: String,
    pub content_type: &'static str,
    pub etag_hex: String,
    pub raw: Vec<u8>,
    pub gzip: Option<Vec<u8>>,
    pub br: Option<Vec<u8>>,
}

fn main() {
    if let Err(error) = run() {
        // Cargo shows a failed build script's stderr: the error and its causes.
        eprintln!("error: embedding the storefront app: {error}");
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            eprintln!("  caused by: {cause}");
            source = cause.source();
        }
        std::process::exit(1);
    }
}

fn run() -> Result<(), BuildError> {
    let manifest_dir = env_path("CARGO_MANIFEST_DIR")?;
    let out_dir = env_path("OUT_DIR")?;
    let files = walk::app_files(&manifest_dir.join(APP_DIR))?;
    if !files.iter().any(|f| f.path == INDEX) {
        return Err(BuildError::NoIndex);
    }
    let build_id = build_id(&files);
    let prepared = files
        .into_iter()
        .map(|file| prepare(file, &build_id))
        .collect::<Result<Vec<_>, BuildError>>()?;
    emit::site(&out_dir, &build_id, &prepared)
}

/// One file as served: the page with its asset prefix, its codings and its ETag.
fn prepare(file: walk::AppFile, build_id: &str) -> Result<Prepared, BuildError> {
    let raw = if file.path == INDEX {
        with_asset_prefix(file.bytes, build_id)?
    } else {
        file.bytes
    };
    let codings = compress::smaller_codings(&file.path, &raw, file.compressible)?;
    Ok(Prepared {
        etag_hex: sha256_hex(&raw, ETAG_HEX_LEN),
        path: file.path,
        content_type: file.content_type,
        raw,
        gzip: codings.gzip,
        br: codings.br,
    })
}

fn env_path(name: &'static str) -> Result<PathBuf, BuildError> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .ok_or(BuildError::Env(name))
}

/// SHA-256 over every file's path and bytes, in path order, each length-prefixed so no two
/// different apps hash the same stream.
fn build_id(files: &[walk::AppFile]) -> String {
    let mut hasher = Sha256::new();
    for file in files {
        for part in [file.path.as_bytes(), &file.bytes] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
    }
    hex(&hasher.finalize(), BUILD_ID_HEX_LEN)
}

fn sha256_hex(bytes: &[u8], len: usize) -> String {
    hex(&Sha256::digest(bytes), len)
}

fn hex(bytes: &[u8], len: usize) -> String {
    let mut text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    text.truncate(len);
    text
}

/// `index.html` with every `{{assets}}` replaced by `/assets/<build_id>`.
fn with_asset_prefix(page: Vec<u8>, build_id: &str) -> Result<Vec<u8>, BuildError> {
    let text = String::from_utf8(page).map_err(|_| BuildError::IndexNotUtf8)?;
    Ok(text
        .replace(ASSETS_PLACEHOLDER, &format!("/assets/{build_id}"))
        .into_bytes())
}

/// `path` as UTF-8, for the generated code.
pub fn utf8(path: &Path) -> Result<&str, BuildError> {
    path.to_str()
        .ok_or_else(|| BuildError::NotUtf8(path.to_owned()))
}
