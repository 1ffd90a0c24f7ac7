//! The Kubernetes client: in-cluster config, else a kubeconfig.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// How to reach the API server.
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    /// `--kubeconfig`; when absent, in-cluster config is tried first, then
    /// `$KUBECONFIG` and `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`: a context of the kubeconfig other than the current one.
    pub context: Option<String>,
}

/// The client could not be configured (nothing was sent yet).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig file given by `--kubeconfig` is unreadable or invalid.
    #[error("cannot read the kubeconfig {path}: {source}")]
    ReadKubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The kubeconfig does not give a usable cluster, user or context.
    #[error("the kubeconfig cannot be used: {0} (check --context and the file's clusters/users)")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    /// Neither in-cluster config nor a kubeconfig was found.
    #[error(
        "no Kubernetes configuration found: not running in a cluster, and no kubeconfig ({0}); \
         pass --kubeconfig or set KUBECONFIG"
    )]
    Infer(#[source] kube::config::InferConfigError),
    /// The HTTP client could not be built (e.g. an invalid CA certificate).
    #[error("cannot build the Kubernetes client: {0}")]
    Build(#[source] kube::Error),
}

/// Builds a client; sends nothing.
pub async fn connect(settings: &ClientSettings) -> Result<kube::Client, ClientError> {
    let options = KubeConfigOptions {
        context: settings.context.clone(),
        ..Default::default()
    };
    let config = match (&settings.kubeconfig, &settings.context) {
        (Some(path), _) => {
            let file =
                Kubeconfig::read_from(path).map_err(|source| ClientError::ReadKubeconfig {
                    path: path.clone(),
                    source,
                })?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(ClientError::Kubeconfig)?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(ClientError::Kubeconfig)?,
        (None, None) => kube::Config::infer().await.map_err(ClientError::Infer)?,
    };
    kube::Client::try_from(config).map_err(ClientError::Build)
}
