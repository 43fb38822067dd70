//! Lists as the commands print them: aligned columns on a terminal, tab-separated rows otherwise.

use std::io::{IsTerminal, Write};

/// Prints the rows of a list. On a terminal: a header over aligned columns, or `none` when there are
/// no rows. Piped or redirected: tab-separated rows only, no header, and nothing at all when there
/// are none, so scripts can count and split lines.
pub(super) fn print_rows(header: &[&str], rows: impl Iterator<Item = Vec<String>>, none: &str) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    write_rows(&mut stdout.lock(), terminal, header, rows, none)?;
    Ok(())
}

fn write_rows(
    out: &mut impl Write,
    terminal: bool,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
    none: &str,
) -> std::io::Result<()> {
    // A tab or newline inside a value (a user agent, say) would break the one-line-per-row format.
    let clean = |v: String| v.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
    let rows: Vec<Vec<String>> = rows.map(|row| row.into_iter().map(clean).collect()).collect();
    if !terminal {
        for row in &rows {
            writeln!(out, "{}", row.join("\t"))?;
        }
        return out.flush();
    }
    if rows.is_empty() {
        writeln!(out, "{none}")?;
        return out.flush();
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, v) in widths.iter_mut().zip(row) {
            *w = (*w).max(v.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, v) in row.iter().enumerate() {
            line.push_str(v);
            if i < last {
                line.extend(std::iter::repeat_n(' ', widths[i] - v.chars().count() + 2));
            }
        }
        writeln!(out, "{line}")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::write_rows;

    fn render(terminal: bool, rows: &[&[&str]]) -> String {
        let mut out = Vec::new();
        let rows = rows.iter().map(|r| r.iter().map(|v| (*v).to_owned()).collect());
        write_rows(&mut out, terminal, &["NAME", "ROLE"], rows, "no users yet").unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_terminal_gets_a_header_over_aligned_columns() {
        assert_eq!(render(true, &[&["alice", "admin"], &["bo", "user"]]), "NAME   ROLE\nalice  admin\nbo     user\n");
    }

    #[test]
    fn a_pipe_gets_tab_separated_rows_without_a_header() {
        assert_eq!(render(false, &[&["alice", "admin"], &["b\tx", "user"]]), "alice\tadmin\nb x\tuser\n");
    }

    #[test]
    fn an_empty_list_says_so_on_a_terminal_and_prints_nothing_to_a_pipe() {
        assert_eq!(render(true, &[]), "no users yet\n");
        assert_eq!(render(false, &[]), "");
    }
}
