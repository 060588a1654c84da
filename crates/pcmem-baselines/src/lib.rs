//! # pcmem-baselines: the associative memories the paper compares against
//!
//! - [`Autoencoder`]: overparameterised autoencoder trained by backprop (Radhakrishnan et al.
//!   2019), recall by iterating the map with known pixels clamped;
//! - [`ClassicalHopfield`]: Hebbian weights, asynchronous or synchronous sign updates
//!   (Hopfield 1982);
//! - [`ModernHopfield`]: `xi <- X^T softmax(beta X xi)` (Ramsauer et al. 2021), beta = 2 as in
//!   the paper;
//! - [`DenseAm`]: dense associative memory with a polynomial or exponential interaction (Krotov
//!   and Hopfield 2016).
//!
//! All implement [`pcmem_model::AssociativeMemory`], like the PCN, so the harness treats every
//! model alike.

pub mod autoencoder;
pub mod error;
pub mod hopfield;
pub mod modern_hopfield;

pub use autoencoder::{AeActivation, Autoencoder, AutoencoderConfig};
pub use error::{BaselineError, Result};
pub use hopfield::{ClassicalHopfield, DenseAm, HopfieldConfig, Interaction, Update};
pub use modern_hopfield::{ModernHopfield, ModernHopfieldConfig};
