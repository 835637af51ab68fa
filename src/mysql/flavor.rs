//! MySQL and MariaDB differ in replication syntax and system variables. The
//! flavor is read from the running server, never guessed from an image name.

/// A server family with its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    MariaDb { major: u32, minor: u32 },
    MySql { major: u32, minor: u32 },
}

impl Flavor {
    /// Parses `SELECT VERSION()`, e.g. `10.11.6-MariaDB-0+deb12u1-log` or `8.4.2`.
    pub fn from_version(version: &str) -> Option<Flavor> {
        let mut nums = version.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse::<u32>());
        let major = nums.next()?.ok()?;
        let minor = nums.next()?.ok()?;
        if version.to_ascii_lowercase().contains("mariadb") {
            Some(Flavor::MariaDb { major, minor })
        } else {
            Some(Flavor::MySql { major, minor })
        }
    }

    /// Whether Switchyard supports this server: MariaDB 10.11+ or MySQL 8.0+.
    pub fn is_supported(self) -> bool {
        match self {
            Flavor::MariaDb { major, minor } => (major, minor) >= (10, 11),
            Flavor::MySql { major, .. } => major >= 8,
        }
    }

    pub fn is_mariadb(self) -> bool {
        matches!(self, Flavor::MariaDb { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            Flavor::from_version("10.11.6-MariaDB-0+deb12u1-log"),
            Some(Flavor::MariaDb { major: 10, minor: 11 })
        );
        assert_eq!(Flavor::from_version("8.4.2"), Some(Flavor::MySql { major: 8, minor: 4 }));
        assert_eq!(Flavor::from_version("8.0.36-28"), Some(Flavor::MySql { major: 8, minor: 0 }));
        assert_eq!(Flavor::from_version("garbage"), None);
    }

    #[test]
    fn support_and_family() {
        assert!(Flavor::MariaDb { major: 11, minor: 4 }.is_supported());
        assert!(!Flavor::MariaDb { major: 10, minor: 6 }.is_supported());
        assert!(!Flavor::MySql { major: 5, minor: 7 }.is_supported());
        assert!(Flavor::MariaDb { major: 10, minor: 11 }.is_mariadb());
        assert!(!Flavor::MySql { major: 8, minor: 0 }.is_mariadb());
    }
}
