//! Models shared by the examples and the integration tests: the sbibm tasks of
//! `../shared/tasks` written with `#[simulator]`, a hierarchical model, an SIR epidemic
//! with fixed settings, Lotka–Volterra (an ODE), a regression on a large design-matrix
//! setting and a bounded prior with a closed-form posterior. (A folder without `main.rs`, so Cargo does not build it as an example.)
#![allow(dead_code)]

pub mod blob;
pub mod gaussian_linear;
pub mod hierarchical;
pub mod lotka_volterra;
pub mod measurement;
pub mod narrow;
pub mod normal_gamma;
pub mod offset;
pub mod regression;
pub mod sir;
pub mod slcp;
pub mod two_moons;
pub mod uniform_box;
