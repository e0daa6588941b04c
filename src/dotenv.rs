//! `.env` in the working directory: `KEY=value` lines (quotes, `export`,
//! comments, as dotenv tools read them) set what the environment does not
//! already set, before the flags are read. The AI-observability scale test
//! periscope replaces was configured this way (`cp .env.example .env`). A
//! leaf: it reads a file and sets variables.

use std::path::Path;

/// Set the variables of the file at `path` that the environment lacks;
/// the names set, in the file's order (none when there is no file). A
/// line that is not `KEY=value` is an error naming it.
pub fn load(path: &Path) -> Result<Vec<String>, String> {
    let iter = match dotenvy::from_path_iter(path) {
        Ok(it) => it,
        Err(e) if e.not_found() => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut set = Vec::new();
    for item in iter {
        let (k, v) = item.map_err(|e| format!("{}: {e}", path.display()))?;
        if std::env::var_os(&k).is_none() {
            // Single-threaded here: the binary calls this before anything
            // else reads the environment.
            std::env::set_var(&k, v);
            set.push(k);
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_sets_what_the_environment_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join(".env");
        std::fs::write(
            &f,
            "# the scale test\nPERISCOPE_DOTENV_A=one\nexport PERISCOPE_DOTENV_B=\"two words\"\nPERISCOPE_DOTENV_C=kept\n",
        )
        .unwrap();
        std::env::set_var("PERISCOPE_DOTENV_C", "from the environment");
        let set = load(&f).unwrap();
        assert_eq!(set, ["PERISCOPE_DOTENV_A", "PERISCOPE_DOTENV_B"]);
        assert_eq!(std::env::var("PERISCOPE_DOTENV_B").unwrap(), "two words");
        assert_eq!(
            std::env::var("PERISCOPE_DOTENV_C").unwrap(),
            "from the environment"
        );
        assert!(load(&dir.path().join("none")).unwrap().is_empty());
        std::fs::write(&f, "NOT A LINE\n").unwrap();
        assert!(load(&f).unwrap_err().contains(".env"));
    }
}
