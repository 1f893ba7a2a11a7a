//! # Reference scoring
//!
//! Evidence that does not come from text: each patch of an image is compared with patches known or assumed to be
//! normal, on any backbone's patch features (`[layers, cells, dim]`).
//!
//! - [`Memory`] (k-shot, "golden samples"): the patches of k good images per feature layer, optionally
//!   subsampled by a greedy coreset ([`coreset`], as PatchCore); a patch's score is the distance to its nearest
//!   memory patch, `1 - cosine`, averaged over the layers.
//! - [`Pool`] (zero-shot, mutual scoring as MuSc): the patches of the other images of a batch, or of the last N
//!   images of a stream; a patch's distance to each pool image is its nearest-patch distance there, and its score
//!   is the mean of the lowest `fraction` of those per-image distances, so a few defective images in the pool
//!   cannot hide each other.
//! - [`knn`]: the exact nearest-neighbour search both use, as blocked matrix products (bounded memory, the cores
//!   shared by rayon's pool).
//!
//! Scores here are raw distances; turning them into evidence on a common scale and fusing them with text is the
//! SDK's job (`loupe_sdk::fusion`). Method, settings and measurements: `docs/reference.md`.

pub mod coreset;
pub mod error;
pub mod knn;
pub mod memory;
pub mod mutual;
pub mod patches;
pub mod rng;
pub mod stats;

pub use error::{ReferenceError, Result};
pub use memory::{Memory, MemoryLayer};
pub use mutual::Pool;
pub use patches::PatchSet;
