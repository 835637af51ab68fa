//! MySQL access: the one place that knows how to reach a server and how
//! MySQL 8 and MariaDB spell the same operation.

pub mod flavor;

pub use flavor::Flavor;
