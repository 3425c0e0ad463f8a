//! The border: the parsed command line, the environment and cip.toml turned once into the plain
//! values of [`crate::options`] that the commands hand down. Nothing below `commands` sees a clap
//! type, and a value a command needs (its remote registry) is resolved here or the command does
//! not start, with the error saying how to give it.
use std::path::{Path, PathBuf};

use clap::ArgMatches;

use super::{BuildArgs, Cli, ConnectArgs, FarmArgs, ForceArgs, MatrixArgs, MirrorArgs, TargetArgs};
use crate::config::file::ProjectFile;
use crate::config::settings::Settings;
use crate::config::RunConfig;
use crate::options::{
    default_jobs, ConnectOptions, FarmOptions, Forcing, MirrorOptions, PlanOptions, ProjectOptions,
    RunOptions, TargetOptions, Targets,
};
use crate::progress::Progress;

/// How to reach registries, from the flags and the environment (TLS, retries, timeouts).
pub fn connect(c: &ConnectArgs, env: &RunConfig) -> ConnectOptions {
    ConnectOptions {
        insecure_registries: c.insecure_registry.clone(),
        ca_certs: c.ca_cert.clone(),
        no_login: c.no_login,
        ssl_cert_file: env.ssl_cert_file.clone(),
        retry: env.retry.clone(),
        timeouts: env.timeouts,
        temp_dir: env.temp_dir.clone(),
        events: env.reporter(None, false).events(),
    }
}

/// The display mode of a process that has not resolved its settings (or has none: `merge`): the
/// environment's (`CIP_PROGRESS`, `CI`), `auto` made `tty` or `plain`.
pub fn display_mode(env: &RunConfig) -> Progress {
    crate::progress::resolve(&[env.progress], stderr_is_term(), env.ci)
}

fn stderr_is_term() -> bool {
    console::Term::stderr().is_term()
}

/// The values of a command that acts on a project: its settings resolved (flag > environment >
/// cip.toml > default) with the environment, each option built from them.
pub struct Resolver<'a> {
    env: &'a RunConfig,
    project_dir: PathBuf,
    file: Option<ProjectFile>,
    settings: Settings,
}

impl<'a> Resolver<'a> {
    /// Reads the project's cip.toml (if any) and resolves the settings of the subcommand
    /// `matches` holds; a bad value in the environment or the file stops here.
    pub fn new(
        env: &'a RunConfig,
        project_dir: &Path,
        matches: &ArgMatches,
    ) -> anyhow::Result<Resolver<'a>> {
        let file = ProjectFile::load(project_dir)?;
        let settings = Settings::resolve(&Cli::given_flags(matches), env, file.as_ref())?;
        Ok(Self::with(env, project_dir, file, settings))
    }

    /// A resolver of settings already resolved (from `file`).
    pub fn with(
        env: &'a RunConfig,
        project_dir: &Path,
        file: Option<ProjectFile>,
        settings: Settings,
    ) -> Resolver<'a> {
        Resolver {
            env,
            project_dir: project_dir.to_path_buf(),
            file,
            settings,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn file(&self) -> Option<&ProjectFile> {
        self.file.as_ref()
    }

    pub fn env(&self) -> &RunConfig {
        self.env
    }

    pub fn project(&self) -> ProjectOptions {
        ProjectOptions {
            dir: self.project_dir.clone(),
            default_platforms: self.settings.default_platforms.value.clone(),
        }
    }

    /// The remote registry, or the error saying the three ways to give one.
    pub fn remote_registry(&self) -> anyhow::Result<String> {
        self.settings.remote_registry().map(str::to_string)
    }

    pub fn local_registry(&self) -> String {
        self.settings.local_registry.value.clone()
    }

    /// The builder of the commands that take `--builder` (the setting: flag, `CIP_BUILDER`,
    /// cip.toml, `auto`).
    pub fn builder(&self) -> crate::builders::BuilderKind {
        self.settings.builder.value
    }

    pub fn connect(&self, c: &ConnectArgs) -> ConnectOptions {
        connect(c, self.env)
    }

    pub fn farm(&self, f: &FarmArgs) -> FarmOptions {
        FarmOptions {
            farm: f.farm.clone(),
            nodes: f.node.clone(),
            native_only: f.native_only,
            local: self.env.local_node(),
            probing: crate::farm::probe::Probing::of(self.env),
        }
    }

    /// A read-only command asks the local registry unless told `--remote-registry REG` or
    /// `--remote` (the configured one): a remote registry in cip.toml alone does not change what
    /// it asks.
    pub fn target(&self, t: &TargetArgs) -> anyhow::Result<TargetOptions> {
        let remote_registry = match t.remote {
            true => Some(self.remote_registry()?),
            false => t.remote_registry.clone(),
        };
        Ok(TargetOptions {
            remote_registry,
            local_registry: self.local_registry(),
            only_local_platform: t.only_local_platform,
            platforms: t.platform.as_ref().map(|p| p.0.clone()),
            stage: t.stage.namespace(),
            connect: self.connect(&t.connect),
            query_concurrency: self.env.query_concurrency,
        })
    }

    /// What `cip ci matrix` plans against: the registry the pipeline publishes to, always the
    /// remote one, its final repositories.
    pub fn matrix_target(&self, m: &MatrixArgs) -> anyhow::Result<TargetOptions> {
        Ok(TargetOptions {
            remote_registry: Some(self.remote_registry()?),
            local_registry: String::new(),
            only_local_platform: false,
            platforms: m.platform.as_ref().map(|p| p.0.clone()),
            stage: None,
            connect: self.connect(&m.connect),
            query_concurrency: self.env.query_concurrency,
        })
    }

    pub fn mirror(&self, m: &MirrorArgs) -> MirrorOptions {
        MirrorOptions {
            connect: self.connect(&m.connect),
            strict: m.strict,
            json: m.json,
            builder_env: self.env.local_node(),
        }
    }

    /// `[registry.mirrors]` of cip.toml.
    pub fn mirrors(&self) -> crate::bases::resolve::Mirrors {
        let map = self.file().map(|f| {
            f.registry
                .mirrors
                .iter()
                .map(|(host, m)| (host.clone(), m.value.clone()))
                .collect()
        });
        crate::bases::resolve::Mirrors(map.unwrap_or_default())
    }

    /// What `cip plan` is told of the run it shows (jobs as the run resolves them).
    pub fn plan(&self, c: &super::PlanChoices) -> PlanOptions {
        let project = self.project();
        PlanOptions {
            allow_drift: c.allow_drift,
            no_latest: c.no_latest,
            arch_tags: c.arch_tags,
            build_args: c.build_arg.clone(),
            labels: c.label.clone(),
            secrets: c.secret.clone(),
            no_cache: c.no_cache,
            pull: c.pull,
            jobs: self.settings.jobs.value.unwrap_or_else(default_jobs).max(1),
            log_dir: c
                .log_dir
                .clone()
                .unwrap_or_else(|| project.dir.join(".cip/logs")),
            binfmt_dir: self.env.binfmt_dir.clone(),
        }
    }

    /// A building run's options: the settings for builder, jobs and progress, the flags for the
    /// rest, the environment for what the stages below need.
    pub fn run(&self, b: &BuildArgs) -> anyhow::Result<RunOptions> {
        let s = &self.settings;
        let progress = Progress::parse(&s.progress.value).map_err(anyhow::Error::msg)?;
        let project = self.project();
        Ok(RunOptions {
            log_dir: b
                .log_dir
                .clone()
                .unwrap_or_else(|| project.dir.join(".cip/logs")),
            project,
            builder: s.builder.value,
            platforms: b.platform.as_ref().map(|p| p.0.clone()),
            jobs: s.jobs.value.unwrap_or_else(default_jobs).max(1),
            keep_going: b.keep_going,
            forcing: forcing(&b.forcing),
            dry_run: b.dry_run,
            allow_drift: b.allow_drift,
            no_latest: b.no_latest,
            arch_tags: b.arch_tags,
            no_cache: b.no_cache,
            pull: b.pull,
            build_args: b.build_arg.clone(),
            labels: b.label.clone(),
            secrets: b.secret.clone(),
            connect: self.connect(&b.connect),
            farm: self.farm(&b.farm),
            json: b.json,
            verbose: b.verbose,
            progress: crate::progress::resolve(&[Some(progress)], stderr_is_term(), self.env.ci),
            metadata_file: b.metadata_file.clone(),
            targets: targets(&b.targets),
            builder_args: b.builder_args.clone(),
            query_concurrency: self.env.query_concurrency,
            binfmt_dir: self.env.binfmt_dir.clone(),
        })
    }
}

pub fn forcing(f: &ForceArgs) -> Forcing {
    Forcing {
        images: f.force.clone(),
        all: f.force_all,
    }
}

pub fn targets(t: &super::Targets) -> Targets {
    Targets {
        images: t.images.clone(),
        with_descendants: t.with_descendants,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use clap::{CommandFactory, FromArgMatches};

    use super::*;
    use crate::builders::BuilderKind;
    use crate::cli::Command;

    fn env(pairs: &[(&str, &str)]) -> RunConfig {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RunConfig::from_vars(vars).unwrap()
    }

    /// The command line `args` parsed, with its settings resolved against `env` and the cip.toml
    /// `file` (text), as `main` does.
    fn resolved<'a>(
        args: &[&str],
        env: &'a RunConfig,
        file: Option<&str>,
    ) -> (Command, anyhow::Result<Resolver<'a>>) {
        let matches = Cli::command().try_get_matches_from(args).unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        let dir = Path::new("/p");
        let file = file.map(|t| ProjectFile::parse(&dir.join("cip.toml"), t).unwrap());
        let settings = Settings::resolve(&Cli::given_flags(&matches), env, file.as_ref());
        let resolver = settings.map(|s| Resolver::with(env, dir, file, s));
        (cli.command, resolver)
    }

    fn build_args(command: &Command) -> &BuildArgs {
        match command {
            Command::Publish { build, .. }
            | Command::PublishLocally { build, .. }
            | Command::Build { build, .. } => build,
            _ => panic!("not a building command"),
        }
    }

    const FILE: &str = "[registry]\nremote = \"file.example/team\"\nlocal = \"127.0.0.1:5999\"\n\
                        [build]\njobs = 3\nbuilder = \"podman\"\nprogress = \"quiet\"\n\
                        platforms = [\"linux/arm64\"]\n";

    #[test]
    fn a_flag_beats_cip_toml_which_beats_the_default() {
        let none = env(&[]);
        let (cmd, r) = resolved(&["cip", "publish", "-j", "5"], &none, Some(FILE));
        let r = r.unwrap();
        let opts = r.run(build_args(&cmd)).unwrap();
        assert_eq!(opts.jobs, 5, "the flag");
        assert_eq!(
            opts.builder,
            "podman".parse::<BuilderKind>().unwrap(),
            "cip.toml"
        );
        assert_eq!(opts.progress, Progress::Quiet, "cip.toml");
        assert_eq!(opts.project.default_platforms[0].to_string(), "linux/arm64");
        assert_eq!(r.remote_registry().unwrap(), "file.example/team");
        assert_eq!(opts.log_dir, Path::new("/p/.cip/logs"));

        let (cmd, r) = resolved(&["cip", "build", "--log-dir", "/l", "-q"], &none, None);
        let opts = r.unwrap().run(build_args(&cmd)).unwrap();
        assert_eq!(opts.jobs, default_jobs(), "the default");
        assert_eq!(opts.builder, BuilderKind::AUTO);
        assert_eq!(opts.progress, Progress::Quiet, "-q is --progress quiet");
        assert_eq!(opts.log_dir, Path::new("/l"));
        assert_eq!(opts.project.default_platforms.len(), 2);
    }

    #[test]
    fn the_environment_reaches_the_options() {
        let e = env(&[
            ("CIP_JOBS", "7"),
            ("CIP_QUERY_CONCURRENCY", "3"),
            ("CIP_BINFMT_DIR", "/b"),
            ("CIP_FARM_PROBE_SECONDS", "2.5"),
            ("SSL_CERT_FILE", "/ca.pem"),
            ("TMPDIR", "/t"),
            ("CIP_RETRY_ATTEMPTS", "2"),
            ("STORAGE_DRIVER", "vfs"),
        ]);
        let (cmd, r) = resolved(
            &["cip", "publish-locally", "--ca-cert", "/mine.pem"],
            &e,
            Some(FILE),
        );
        let opts = r.unwrap().run(build_args(&cmd)).unwrap();
        assert_eq!(opts.jobs, 7, "the environment beats cip.toml");
        assert_eq!(opts.query_concurrency, 3);
        assert_eq!(opts.binfmt_dir, Path::new("/b"));
        assert_eq!(opts.farm.probing.timeout.as_millis(), 2500);
        assert_eq!(
            opts.farm.local.get("STORAGE_DRIVER").as_deref(),
            Some("vfs")
        );
        let c = &opts.connect;
        assert_eq!(c.ca_certs, vec![PathBuf::from("/mine.pem")]);
        assert_eq!(c.ssl_cert_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(c.temp_dir, Path::new("/t"));
        assert_eq!(c.retry.attempts, 2);
    }

    #[test]
    fn a_missing_remote_registry_is_the_error_that_says_how_to_give_one() {
        let none = env(&[]);
        let (_, r) = resolved(&["cip", "publish"], &none, None);
        let e = r.unwrap().remote_registry().unwrap_err().to_string();
        assert!(
            e.starts_with("no remote registry given\n  hint: pass --remote-registry")
                && e.contains("CIP_REMOTE_REGISTRY")
                && e.contains("cip.toml"),
            "{e}"
        );
        let (cmd, r) = resolved(&["cip", "status", "--remote"], &none, None);
        let Command::Status { target, .. } = cmd else {
            panic!("status")
        };
        let e = r.unwrap().target(&target).unwrap_err().to_string();
        assert!(e.starts_with("no remote registry given"), "{e}");
    }

    #[test]
    fn a_read_only_command_asks_the_local_registry_unless_told_remote() {
        let none = env(&[]);
        for (args, remote) in [
            (&["cip", "plan"][..], None),
            (&["cip", "plan", "--remote"][..], Some("file.example/team")),
            (
                &["cip", "plan", "--remote-registry", "r.example"][..],
                Some("r.example"),
            ),
        ] {
            let (cmd, r) = resolved(args, &none, Some(FILE));
            let Command::Plan { target, .. } = cmd else {
                panic!("plan")
            };
            let t = r.unwrap().target(&target).unwrap();
            assert_eq!(t.remote_registry.as_deref(), remote, "{args:?}");
            assert_eq!(t.local_registry, "127.0.0.1:5999", "cip.toml");
        }
        let (cmd, r) = resolved(
            &[
                "cip",
                "status",
                "--local-registry",
                "localhost:6000",
                "--stage",
                "--platform",
                "linux/arm64",
            ],
            &none,
            Some(FILE),
        );
        let Command::Status { target, .. } = cmd else {
            panic!("status")
        };
        let t = r.unwrap().target(&target).unwrap();
        assert_eq!(
            t.local_registry, "localhost:6000",
            "the flag beats cip.toml"
        );
        assert_eq!(t.stage.as_deref(), Some("cip-stage"));
        assert_eq!(t.platforms.unwrap()[0].to_string(), "linux/arm64");
    }

    #[test]
    fn a_bad_environment_value_stops_before_any_command() {
        let bad = env(&[("CIP_PROGRESS", "fancy")]);
        let (_, r) = resolved(&["cip", "build"], &bad, None);
        let e = r.err().unwrap().to_string();
        assert_eq!(
            e,
            "CIP_PROGRESS: \"fancy\" is not one of auto, tty, plain, quiet"
        );
    }
}
