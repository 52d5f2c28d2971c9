//! The library half of `pulso-devtool`: the demo data, the large-clinic and many-clinics
//! generators and the owner transactions they need. The `pulso-devtool` binary wraps them in
//! commands; the benchmarks and tests (`pulso-tests`) call the same generators on their own
//! databases.

pub mod demo;
pub mod large_clinic;
pub mod many_clinics;
pub mod rls;
pub mod seed;

/// The import-cycle check, shared with `shared` (one copy of the parser). It reads all of
/// `src/`, so it also covers the modules of the binary (`main.rs`).
#[cfg(test)]
#[path = "../../../shared/src/layers.rs"]
mod layers;
