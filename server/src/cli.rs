//! The server's administrative commands: creating the first accounts without a credential in
//! the repository.

use std::io::{BufRead, IsTerminal};

use app::auth::Role;
use uuid::Uuid;

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Serve the app (no arguments).
    Serve,
    /// `create-user --email E --role ops|merchant_admin [--merchant ID]…`
    CreateUser {
        email: String,
        role: Role,
        merchants: Vec<Uuid>,
    },
    /// `create-merchant --name N`
    CreateMerchant {
        name: String,
    },
    /// `rename-merchant --id ID --name N`
    RenameMerchant {
        id: Uuid,
        name: String,
    },
    /// `bench [--scale S] [--schema app|original] [--json]`
    Bench(crate::bench::Options),
    /// `bench-batch --scale S [--schema app|original] --dir DIR`
    BenchBatch {
        options: crate::bench::Options,
        dir: std::path::PathBuf,
    },
    /// `bench-stage [--json] FILE…`
    BenchStage {
        files: Vec<std::path::PathBuf>,
        json: bool,
    },
    Help,
}

pub const USAGE: &str = "\
usage:
  server                                   serve Code Import (configured by the environment)
  server create-user --email EMAIL --role ops|merchant_admin [--merchant MERCHANT_ID]...
                                           create an account; the password is read from the
                                           terminal (asked twice) or from one line of stdin
  server create-merchant --name NAME       create a merchant and print its id
  server rename-merchant --id MERCHANT_ID --name NAME
                                           rename a merchant (those adopted from an original
                                           database are named after their id)
  server bench [--scale S] [--schema app|original] [--json]
                                           run the benchmark on a scratch database next to
                                           DATABASE_URL's (scale 1.0 = 63 files, 15.5 M rows),
                                           on this app's tables or on the original system's
                                           adopted by the migrations, beside the original method
  server bench-stage [--json] FILE...      time the server's own staging of these CSV files
                                           (through the chunk path, for a merchant of its own in
                                           DATABASE_URL's database, cleared after): the peer of
                                           the browser's upload in its benchmark
  server bench-batch --scale S [--schema app|original] --dir DIR
                                           create DATABASE_URL's database with the benchmark's
                                           existing codes and write its batch into DIR, for a
                                           journey through the page (prints the merchant, the
                                           files and the generator's counts as JSON)";

/// Parses the arguments after the program name; the error says what is wrong.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some((command, rest)) = args.split_first() else {
        return Ok(Command::Serve);
    };
    let mut email = None;
    let mut role = None;
    let mut name = None;
    let mut merchants = Vec::new();
    let mut id = None;
    let mut scale = 0.1;
    let mut json = false;
    let mut schema = crate::bench::Schema::App;
    let mut files = Vec::new();
    let mut dir = None;
    let mut flags = rest.iter();
    while let Some(flag) = flags.next() {
        let mut value = || flags.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--email" => email = Some(value()?),
            "--name" => name = Some(value()?),
            "--role" => {
                let given = value()?;
                role =
                    Some(Role::parse(&given).ok_or_else(|| format!("--role is ops or merchant_admin, not {given:?}"))?);
            }
            "--json" => json = true,
            "--dir" => dir = Some(std::path::PathBuf::from(value()?)),
            "--schema" => {
                let given = value()?;
                schema = crate::bench::Schema::parse(&given)
                    .ok_or_else(|| format!("--schema is app or original, not {given:?}"))?;
            }
            "--scale" => {
                let given = value()?;
                scale = given
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0 && *s <= 10.0)
                    .ok_or_else(|| format!("--scale takes a number from 0 to 10, not {given:?}"))?;
            }
            "--id" => {
                let given = value()?;
                id = Some(given.parse().map_err(|_| format!("--id {given:?} is not a merchant id (uuid)"))?);
            }
            "--merchant" => {
                let given = value()?;
                merchants.push(given.parse().map_err(|_| format!("--merchant {given:?} is not a merchant id (uuid)"))?);
            }
            path if command == "bench-stage" && !path.starts_with("--") => files.push(path.into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    match command.as_str() {
        "create-user" => Ok(Command::CreateUser {
            email: email.ok_or("create-user needs --email")?,
            role: role.ok_or("create-user needs --role")?,
            merchants,
        }),
        "create-merchant" => Ok(Command::CreateMerchant { name: name.ok_or("create-merchant needs --name")? }),
        "rename-merchant" => Ok(Command::RenameMerchant {
            id: id.ok_or("rename-merchant needs --id")?,
            name: name.ok_or("rename-merchant needs --name")?,
        }),
        "bench" => Ok(Command::Bench(crate::bench::Options { scale, json, schema })),
        "bench-batch" => Ok(Command::BenchBatch {
            options: crate::bench::Options { scale, json, schema },
            dir: dir.ok_or("bench-batch needs --dir, where it writes the files")?,
        }),
        "bench-stage" if files.is_empty() => Err("bench-stage needs the CSV files to stage".to_owned()),
        "bench-stage" => Ok(Command::BenchStage { files, json }),
        "help" | "--help" | "-h" => Ok(Command::Help),
        other => Err(format!("unknown command {other:?}")),
    }
}

/// Reads a new password: hidden and asked twice on a terminal, else one line of stdin.
pub fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let second = rpassword::prompt_password("Password again: ").map_err(|e| e.to_string())?;
        if first != second {
            return Err("the passwords differ".to_owned());
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| e.to_string())?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn no_arguments_serve_the_app() {
        assert_eq!(parse(&[]), Ok(Command::Serve));
    }

    #[test]
    fn create_user_takes_email_role_and_merchants() {
        let merchant = Uuid::from_u128(7);
        assert_eq!(
            parse(&args(&format!("create-user --email a@b.co --role merchant_admin --merchant {merchant}"))),
            Ok(Command::CreateUser { email: "a@b.co".into(), role: Role::MerchantAdmin, merchants: vec![merchant] })
        );
        assert!(parse(&args("create-user --email a@b.co --role admin")).unwrap_err().contains("--role"));
        assert!(parse(&args("create-user --role ops")).unwrap_err().contains("--email"));
        assert!(parse(&args("create-user --email")).unwrap_err().contains("needs a value"));
        assert!(parse(&args("frobnicate")).is_err());
    }

    #[test]
    fn rename_merchant_takes_an_id_and_a_name() {
        let merchant = Uuid::from_u128(9);
        assert_eq!(
            parse(&args(&format!("rename-merchant --id {merchant} --name Acme"))),
            Ok(Command::RenameMerchant { id: merchant, name: "Acme".into() })
        );
        assert!(parse(&args("rename-merchant --id nope --name Acme")).unwrap_err().contains("--id"));
        assert!(parse(&args("rename-merchant --name Acme")).unwrap_err().contains("--id"));
    }

    #[test]
    fn bench_takes_a_scale_a_schema_and_json() {
        use crate::bench::{Options, Schema};
        assert_eq!(
            parse(&args("bench --scale 0.5 --schema original --json")),
            Ok(Command::Bench(Options { scale: 0.5, json: true, schema: Schema::Original }))
        );
        assert_eq!(parse(&args("bench")), Ok(Command::Bench(Options { scale: 0.1, json: false, schema: Schema::App })));
        assert!(parse(&args("bench --schema supabase")).unwrap_err().contains("--schema"));
    }

    #[test]
    fn bench_stage_takes_the_files_to_stage() {
        assert_eq!(
            parse(&args("bench-stage --json a.csv b.csv")),
            Ok(Command::BenchStage { files: vec!["a.csv".into(), "b.csv".into()], json: true })
        );
        assert!(parse(&args("bench-stage")).unwrap_err().contains("files"));
        assert!(parse(&args("bench a.csv")).unwrap_err().contains("a.csv"));
    }

    #[test]
    fn bench_batch_takes_a_scale_a_schema_and_the_directory_for_its_files() {
        assert_eq!(
            parse(&args("bench-batch --scale 1.0 --schema original --dir /tmp/batch")),
            Ok(Command::BenchBatch {
                options: crate::bench::Options { scale: 1.0, json: false, schema: crate::bench::Schema::Original },
                dir: "/tmp/batch".into(),
            })
        );
        assert!(parse(&args("bench-batch --scale 1.0")).unwrap_err().contains("--dir"));
    }
}
