//! # pcmem-baselines: the associative memories the paper compares against
//!
//! - [`Autoencoder`]: overparameterised autoencoder trained by backprop (Radhakrishnan et al.
//!   2019), recall by iterating the map with known pixels clamped;
//! - [`ClassicalHopfield`]: Hebbian weights, asynchronous or synchronous sign updates
//!   (Hopfield 1982);
//! - [`ModernHopfield`]: `xi <- X^T softmax(beta X xi)` (Ramsauer et al. 2021), beta = 2 as in
//!   the paper;
//! - [`DenseAm`]: dense associative memory with a polynomial or exponential interaction (Krotov
//!   and Hopfield 2016);
//! - [`Uhn`]: the universal Hopfield network family `M^T sep(sim(M, q))` (Millidge et al.
//!   2022): dot, Euclidean or Manhattan similarity; softmax, max, polynomial or identity
//!   separation;
//! - [`DrDam`]: a dense associative memory in random features, a fixed number of weights
//!   whatever the number of memories (Hoover et al. 2024).
//!
//! All implement [`pcmem_model::AssociativeMemory`], like the PCN, and each has a factory
//! ([`pcmem_model::ModelFactory`]) by which a grid builds it from a table of settings.

pub mod adam;
pub mod ae_cpu;
pub mod autoencoder;
pub mod drdam;
pub mod error;
pub mod hopfield;
pub mod modern_hopfield;
pub mod uhn;

pub use autoencoder::{AeActivation, AeInit, Autoencoder, AutoencoderConfig, AutoencoderFactory};
pub use drdam::{DrDam, DrDamConfig, DrDamFactory};
pub use error::{BaselineError, Result};
pub use hopfield::{
    ClassicalHopfield, DenseAm, DenseAmConfig, DenseAmFactory, HopfieldConfig, HopfieldFactory,
    Interaction, Update,
};
pub use modern_hopfield::{ModernHopfield, ModernHopfieldConfig, ModernHopfieldFactory};
pub use uhn::{Separation, Similarity, Uhn, UhnConfig, UhnFactory};
