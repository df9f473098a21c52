//! Precompression: each file in gzip and brotli at their best (slowest) settings, paid
//! once per build instead of per request; a coding is kept only when it is smaller than
//! the raw bytes (a tiny or already-compressed file is served as it is).

use std::io::Write;

use crate::BuildError;

/// Brotli's best quality.
const BROTLI_QUALITY: i32 = 11;
/// Brotli's window: 2^22 bytes (4 MiB), the format's usual largest and more than any one
/// of our files; decoders in every browser accept it.
const BROTLI_WINDOW_LOG: i32 = 22;

/// A file's compressed forms, each kept only when smaller than the raw bytes.
#[derive(Default)]
pub struct Codings {
    pub gzip: Option<Vec<u8>>,
    pub br: Option<Vec<u8>>,
}

/// The gzip and brotli forms of `raw` (none if it is not `compressible`).
pub fn smaller_codings(path: &str, raw: &[u8], compressible: bool) -> Result<Codings, BuildError> {
    if !compressible {
        return Ok(Codings::default());
    }
    let error = |coding| {
        let path = path.to_owned();
        move |source| BuildError::Compress {
            path,
            coding,
            source,
        }
    };
    let smaller = |coded: Vec<u8>| (coded.len() < raw.len()).then_some(coded);
    let gzip = gzip(raw).map_err(error("gzip"))?;
    let br = brotli(raw).map_err(error("brotli"))?;
    Ok(Codings {
        gzip: smaller(gzip),
        br: smaller(br),
    })
}

/// gzip at level 9; flate2 writes a zero modification time, so the bytes (and their ETag)
/// are the same on every build.
fn gzip(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(raw)?;
    encoder.finish()
}

fn brotli(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let params = brotli::enc::BrotliEncoderParams {
        quality: BROTLI_QUALITY,
        lgwin: BROTLI_WINDOW_LOG,
        ..Default::default()
    };
    let mut coded = Vec::new();
    brotli::BrotliCompress(&mut &raw[..], &mut coded, &params)?;
    Ok(coded)
}
