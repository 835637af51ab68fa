//! Rows of consecutive integers for seeding tables, in SQL that both flavors
//! run. MariaDB's `seq_1_to_N` tables come from its Sequence engine, which
//! MySQL lacks, and a recursive CTE stops at MySQL's cte_max_recursion_depth
//! (1000) unless each session raises it.

/// A derived table with one column, `seq`, holding `from..=to`.
pub fn numbers(from: i64, to: i64) -> String {
    let count = (to - from + 1).max(1);
    let mut digits = 1;
    while 10i64.pow(digits) < count {
        digits += 1;
    }
    let digit = "(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 \
                 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)";
    let sum: Vec<String> = (0..digits).map(|i| format!("{}*d{i}.d", 10i64.pow(i))).collect();
    let tables: Vec<String> = (0..digits).map(|i| format!("{digit} AS d{i}")).collect();
    format!(
        "(SELECT seq FROM (SELECT {from} + {} AS seq FROM {}) AS n WHERE seq <= {to}) AS numbers",
        sum.join(" + "),
        tables.join(" CROSS JOIN ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_digits_for_the_range() {
        let sql = numbers(1, 1000);
        assert!(!sql.contains("1000*d3.d") && sql.contains("100*d2.d"), "{sql}");
        assert!(sql.ends_with("WHERE seq <= 1000) AS numbers"));
        assert!(numbers(50_001, 100_000).contains("10000*d4.d"));
        assert!(numbers(5, 5).contains("SELECT 5 + 1*d0.d"));
    }
}
