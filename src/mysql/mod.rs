//! MySQL access: the one place that knows how to reach a server and how
//! MySQL 8 and MariaDB spell the same operation. Statement text is built by
//! pure functions (`sql`), so the MySQL 8 spelling is unit-tested even where
//! only MariaDB runs.

pub mod flavor;
pub mod gtid;
pub mod instance;
pub mod sql;

pub use flavor::Flavor;
pub use gtid::GtidSet;
pub use instance::{Instance, Observed, ReplicaStatus};
