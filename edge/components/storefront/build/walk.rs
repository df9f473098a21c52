//! The app's files: the folder walked recursively (bounded), each file with its content
//! type by extension, sorted by path. Every folder and file is announced to cargo
//! (`rerun-if-changed`), so editing, adding or removing one rebuilds the component.

use std::fs;
use std::path::{Path, PathBuf};

/// Files in the app: a storefront has tens; this stops a stray `node_modules` from
/// being embedded.
const FILES_MAX: usize = 1024;
/// Folders below the app's own (`vendor/<package>/dist/esm/…`).
const DEPTH_MAX: usize = 8;
/// Bytes of all files together. Each is embedded up to three times (raw, gzip, brotli) in
/// the component's data, which every instance's linear memory (64 MiB by default) holds.
const BYTES_MAX: u64 = 8 << 20;
/// Bytes of a file's path: the same bound as the component's
/// (`tessera_edge_cache::storefront::route::ASSET_PATH_BYTES_MAX`), so every file has a URL.
const PATH_BYTES_MAX: usize = 256;

/// Content type and whether compressing is worth trying, by extension. PNG and WOFF2 are
/// compressed formats already: another pass only costs build time.
const CONTENT_TYPES: [(&str, &str, bool); 11] = [
    ("html", "text/html; charset=utf-8", true),
    ("css", "text/css; charset=utf-8", true),
    ("js", "text/javascript; charset=utf-8", true),
    ("mjs", "text/javascript; charset=utf-8", true),
    ("svg", "image/svg+xml", true),
    ("json", "application/json", true),
    ("webmanifest", "application/manifest+json", true),
    ("txt", "text/plain; charset=utf-8", true),
    ("ico", "image/x-icon", true),
    ("png", "image/png", false),
    ("woff2", "font/woff2", false),
];

/// One file of the app as read.
pub struct AppFile {
    /// Relative to the app's folder, `/`-separated.
    pub path: String,
    pub content_type: &'static str,
    pub compressible: bool,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "storefront/app/{path}: no content type is known for {extension} files; add the \
         extension to CONTENT_TYPES in edge/components/storefront/build/walk.rs, or rename \
         the file"
    )]
    UnknownType { path: String, extension: String },
    #[error(
        "storefront/app/{path}: names may use only ASCII letters, digits, `.`, `-` and `_` \
         (they become URLs as they are, and the edge refuses anything else in an asset URL)"
    )]
    BadName { path: String },
    #[error("storefront/app/{path}: the path is longer than {PATH_BYTES_MAX} bytes")]
    PathTooLong { path: String },
    #[error("storefront/app/{path}: deeper than {DEPTH_MAX} folders")]
    TooDeep { path: String },
    #[error("storefront/app has more than {FILES_MAX} files")]
    TooManyFiles,
    #[error("storefront/app: its files add up to more than {BYTES_MAX} bytes (at {path})")]
    TooLarge { path: String },
}

/// Every file under `app_dir`, sorted by path (the order the component searches).
pub fn app_files(app_dir: &Path) -> Result<Vec<AppFile>, AppError> {
    let mut walk = Walk::default();
    walk.folder(app_dir, "", 0)?;
    walk.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(walk.files)
}

#[derive(Default)]
struct Walk {
    files: Vec<AppFile>,
    bytes: u64,
}

impl Walk {
    /// The entries of `dir` (`prefix` is its path in the app, `""` or ending in `/`).
    fn folder(&mut self, dir: &Path, prefix: &str, depth: usize) -> Result<(), AppError> {
        announce(dir);
        let read = |source| AppError::Read {
            path: dir.to_owned(),
            source,
        };
        let mut entries = fs::read_dir(dir)
            .map_err(read)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read)?;
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let name = entry.file_name();
            let path = format!("{prefix}{}", name.to_string_lossy());
            // Hidden files (`.DS_Store`, editors' swap files) are no part of the app.
            if path.rsplit('/').next().is_some_and(|n| n.starts_with('.')) {
                continue;
            }
            check_name(&path)?;
            let full = entry.path();
            // `fs::metadata` follows a symbolic link to what it names.
            let metadata = fs::metadata(&full).map_err(|source| AppError::Read {
                path: full.clone(),
                source,
            })?;
            if metadata.is_dir() {
                if depth >= DEPTH_MAX {
                    return Err(AppError::TooDeep { path });
                }
                self.folder(&full, &format!("{path}/"), depth + 1)?;
            } else {
                self.file(&full, path, metadata.len())?;
            }
        }
        Ok(())
    }

    fn file(&mut self, full: &Path, path: String, len: u64) -> Result<(), AppError> {
        announce(full);
        if self.files.len() >= FILES_MAX {
            return Err(AppError::TooManyFiles);
        }
        self.bytes = self.bytes.saturating_add(len);
        if self.bytes > BYTES_MAX {
            return Err(AppError::TooLarge { path });
        }
        let (content_type, compressible) = content_type(&path)?;
        let bytes = fs::read(full).map_err(|source| AppError::Read {
            path: full.to_owned(),
            source,
        })?;
        self.files.push(AppFile {
            path,
            content_type,
            compressible,
            bytes,
        });
        Ok(())
    }
}

/// Tells cargo to run the build again when `path` changes (for a folder: any entry added,
/// removed or changed in it).
fn announce(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
}

/// The names' alphabet, as the component checks asset URLs
/// (`tessera_edge_cache::storefront::route::is_file_name_byte`).
fn check_name(path: &str) -> Result<(), AppError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/');
    if !path.bytes().all(allowed) || path.split('/').any(|s| s.is_empty() || s == "..") {
        return Err(AppError::BadName {
            path: path.to_owned(),
        });
    }
    if path.len() > PATH_BYTES_MAX {
        return Err(AppError::PathTooLong {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// The file's content type and whether to compress it, by its extension.
fn content_type(path: &str) -> Result<(&'static str, bool), AppError> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = name
        .rsplit_once('.')
        .map_or("", |(_, ext)| ext)
        .to_ascii_lowercase();
    CONTENT_TYPES
        .iter()
        .find(|(ext, ..)| *ext == extension)
        .map(|&(_, content_type, compressible)| (content_type, compressible))
        .ok_or_else(|| AppError::UnknownType {
            path: path.to_owned(),
            extension: if extension.is_empty() {
                "extension-less".to_owned()
            } else {
                format!("`.{extension}`")
            },
        })
}
