//! Content digests: blake3 (Nydus default chunk digester) and sha256 (OCI blobs, Nydus option).

use crate::error::{arg, Result};
use sha2::Digest as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestAlgo {
    Blake3,
    Sha256,
}

impl DigestAlgo {
    pub fn parse(name: &str) -> Result<DigestAlgo> {
        match name {
            "blake3" => Ok(DigestAlgo::Blake3),
            "sha256" => Ok(DigestAlgo::Sha256),
            _ => arg(format!("unknown digest algorithm '{name}' (expected blake3 or sha256)")),
        }
    }
}

pub fn digest(algo: DigestAlgo, data: &[u8]) -> [u8; 32] {
    match algo {
        DigestAlgo::Blake3 => *blake3::hash(data).as_bytes(),
        DigestAlgo::Sha256 => sha2::Sha256::digest(data).into(),
    }
}

/// A streaming hasher; `finish` consumes its state so a finished hasher cannot be reused by mistake.
#[derive(Clone)]
pub enum Hasher {
    Blake3(Box<blake3::Hasher>),
    Sha256(sha2::Sha256),
    Finished,
}

impl Hasher {
    pub fn new(algo: DigestAlgo) -> Hasher {
        match algo {
            DigestAlgo::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
            DigestAlgo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Hasher::Blake3(h) => {
                h.update(data);
            }
            Hasher::Sha256(h) => h.update(data),
            Hasher::Finished => return arg("hasher already finished"),
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<[u8; 32]> {
        match std::mem::replace(self, Hasher::Finished) {
            Hasher::Blake3(h) => Ok(*h.finalize().as_bytes()),
            Hasher::Sha256(h) => Ok(h.finalize().into()),
            Hasher::Finished => arg("hasher already finished"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn known_vectors() {
        assert_eq!(hex(&digest(DigestAlgo::Sha256, b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hex(&digest(DigestAlgo::Blake3, b"")),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
    }

    #[test]
    fn streaming_matches_oneshot() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        for algo in [DigestAlgo::Blake3, DigestAlgo::Sha256] {
            let mut h = Hasher::new(algo);
            for part in data.chunks(4097) {
                h.update(part).unwrap();
            }
            assert_eq!(h.finish().unwrap(), digest(algo, &data));
            assert!(h.finish().is_err());
        }
    }
}
