//! The identity provider: the Cognito user pool staff sign in at (locally, its stand-in). Pulso
//! creates there the people it invites (`AdminCreateUser`, which sends the invitation with a
//! temporary password) and learns their `sub`, which `user_identities` then maps to the person.
//! Inviting someone the pool already has (a dentist joining a second clinic, a retry after a
//! failure between the pool and PostgreSQL) finds them instead (`AdminGetUser`), so the same
//! request can always be made again.
//!
//! Deactivating a membership does not touch the pool (no `AdminDisableUser`): the pool proves who
//! someone is, Pulso decides what they may do, on every request (`crate::access`), so a
//! deactivated member is refused at once with the token they hold, while the same person keeps
//! signing in to their other clinics and organizations. Disabling the pool account would
//! also lock them out there, and a pool call that failed after the membership changed would
//! leave the two disagreeing; an account with nothing left to open costs nothing but a sign-in
//! that leads to an empty `GET /me`.
//!
//! Without `COGNITO_USER_POOL_ID` there is no provider: invited people sign in with Pulso's own
//! tokens (`pulso-devtool token`), which name them by user id.

use crate::aws::{local_credentials, sdk_config};
use crate::config::CognitoConfig;
use crate::contact::Email;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::types::{AttributeType, DeliveryMediumType};
use std::time::Duration;
use tokio::sync::OnceCell;

pub struct IdentityProvider {
    config: CognitoConfig,
    client: OnceCell<Client>,
}

/// A person in the pool, as an invitation left them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolUser {
    /// The `iss` of the pool's tokens.
    pub issuer: String,
    /// The pool's id for them: the `sub` of their tokens.
    pub subject: String,
    /// This call created them (and the pool sent the invitation).
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The pool refused the address (it checks its own rules too).
    #[error("the identity provider refused the address: {0}")]
    Refused(String),
    /// Unreachable, throttled or failing: the caller may retry the same request.
    #[error("the identity provider failed: {0}")]
    Unavailable(String),
}

impl IdentityProvider {
    pub fn new(config: CognitoConfig) -> Self {
        Self {
            config,
            client: OnceCell::new(),
        }
    }

    /// The `iss` of the pool's tokens: the issuer half of the identities it gives.
    pub fn issuer(&self) -> String {
        self.config.issuer()
    }

    pub fn user_pool_id(&self) -> &str {
        &self.config.user_pool_id
    }

    pub async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let credentials = self.config.custom_endpoint.then(local_credentials);
                let sdk = sdk_config(Some(self.config.region()), credentials).await;
                // Within an HTTP function's 10 s, with room to answer 503.
                let timeouts =
                    aws_sdk_cognitoidentityprovider::config::timeout::TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(2))
                        .operation_timeout(Duration::from_secs(5))
                        .build();
                let mut config = aws_sdk_cognitoidentityprovider::config::Builder::from(&sdk)
                    .timeout_config(timeouts);
                if self.config.custom_endpoint {
                    config = config.endpoint_url(&self.config.endpoint);
                }
                Client::from_conf(config.build())
            })
            .await
    }

    /// Creates `email` in the pool (which invites them), or finds them when the pool has them.
    pub async fn invite(&self, email: &Email, full_name: &str) -> Result<PoolUser, IdentityError> {
        let attribute = |name: &str, value: &str| {
            AttributeType::builder()
                .name(name)
                .value(value)
                .build()
                .expect("name is set")
        };
        let created = self
            .client()
            .await
            .admin_create_user()
            .user_pool_id(&self.config.user_pool_id)
            .username(email.as_str())
            .user_attributes(attribute("email", email.as_str()))
            // The clinic vouches for the address it invites; the invitation proves it anyway.
            .user_attributes(attribute("email_verified", "true"))
            .user_attributes(attribute("name", full_name))
            .desired_delivery_mediums(DeliveryMediumType::Email)
            .send()
            .await;
        match created {
            Ok(output) => output
                .user()
                .and_then(|user| subject_of(user.attributes()))
                .map(|subject| PoolUser {
                    issuer: self.issuer(),
                    subject,
                    created: true,
                })
                .ok_or_else(|| {
                    IdentityError::Unavailable("AdminCreateUser answered no sub".into())
                }),
            Err(SdkError::ServiceError(error)) if error.err().is_username_exists_exception() => {
                self.existing(email).await
            }
            Err(SdkError::ServiceError(error)) if error.err().is_invalid_parameter_exception() => {
                Err(IdentityError::Refused(
                    error
                        .err()
                        .message()
                        .unwrap_or("invalid parameter")
                        .to_owned(),
                ))
            }
            Err(error) => Err(IdentityError::Unavailable(
                DisplayErrorContext(&error).to_string(),
            )),
        }
    }

    async fn existing(&self, email: &Email) -> Result<PoolUser, IdentityError> {
        let output = self
            .client()
            .await
            .admin_get_user()
            .user_pool_id(&self.config.user_pool_id)
            .username(email.as_str())
            .send()
            .await
            .map_err(|error| IdentityError::Unavailable(DisplayErrorContext(&error).to_string()))?;
        subject_of(output.user_attributes())
            .map(|subject| PoolUser {
                issuer: self.issuer(),
                subject,
                created: false,
            })
            .ok_or_else(|| IdentityError::Unavailable("AdminGetUser answered no sub".into()))
    }
}

fn subject_of(attributes: &[AttributeType]) -> Option<String> {
    attributes
        .iter()
        .find(|attribute| attribute.name() == "sub")
        .and_then(|attribute| attribute.value())
        .map(str::to_owned)
}

/// The local stand-in's side of the pool (`infra/scripts/cognito.sh`), for the dev tool and the
/// tests: the pool, app client and platform group `template.yaml` makes in the cloud, made
/// idempotently (the stand-in forgets everything when it restarts), and demo passwords.
pub struct StandIn {
    client: Client,
}

/// A pool on the stand-in and its app client.
#[derive(Clone, Debug)]
pub struct StandInPool {
    pub user_pool_id: String,
    pub client_id: String,
}

type StandInResult<T> = Result<T, IdentityError>;

fn failed<E: std::error::Error + 'static>(
    error: SdkError<E, impl std::fmt::Debug>,
) -> IdentityError {
    IdentityError::Unavailable(DisplayErrorContext(&error).to_string())
}

impl StandIn {
    /// A client of the stand-in at `endpoint`, in `region` (the pools' ids start with it).
    pub async fn new(endpoint: &str, region: &str) -> Self {
        let sdk = sdk_config(Some(region), Some(local_credentials())).await;
        let config = aws_sdk_cognitoidentityprovider::config::Builder::from(&sdk)
            .endpoint_url(endpoint)
            .build();
        Self {
            client: Client::from_conf(config),
        }
    }

    /// The pool called `name` with its `web` client, created when missing.
    pub async fn pool(&self, name: &str) -> StandInResult<StandInPool> {
        use aws_sdk_cognitoidentityprovider::types::{
            ExplicitAuthFlowsType, UsernameAttributeType, VerifiedAttributeType,
        };
        let pools = self
            .client
            .list_user_pools()
            .max_results(60)
            .send()
            .await
            .map_err(failed)?;
        let existing = pools
            .user_pools()
            .iter()
            .find(|pool| pool.name() == Some(name))
            .and_then(|pool| pool.id().map(str::to_owned));
        let user_pool_id = match existing {
            Some(id) => id,
            None => self
                .client
                .create_user_pool()
                .pool_name(name)
                .username_attributes(UsernameAttributeType::Email)
                .auto_verified_attributes(VerifiedAttributeType::Email)
                .send()
                .await
                .map_err(failed)?
                .user_pool()
                .and_then(|pool| pool.id().map(str::to_owned))
                .ok_or_else(|| {
                    IdentityError::Unavailable("CreateUserPool answered no id".into())
                })?,
        };
        let clients = self
            .client
            .list_user_pool_clients()
            .user_pool_id(&user_pool_id)
            .max_results(60)
            .send()
            .await
            .map_err(failed)?;
        let existing = clients
            .user_pool_clients()
            .iter()
            .find(|client| client.client_name() == Some("web"))
            .and_then(|client| client.client_id().map(str::to_owned));
        let client_id = match existing {
            Some(id) => id,
            None => self
                .client
                .create_user_pool_client()
                .user_pool_id(&user_pool_id)
                .client_name("web")
                .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
                .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserSrpAuth)
                .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
                .send()
                .await
                .map_err(failed)?
                .user_pool_client()
                .and_then(|client| client.client_id().map(str::to_owned))
                .ok_or_else(|| {
                    IdentityError::Unavailable("CreateUserPoolClient answered no id".into())
                })?,
        };
        let group = self
            .client
            .create_group()
            .user_pool_id(&user_pool_id)
            .group_name(crate::auth::PLATFORM_GROUP)
            .send()
            .await;
        match group {
            Ok(_) => {}
            Err(SdkError::ServiceError(error)) if error.err().is_group_exists_exception() => {}
            Err(error) => return Err(failed(error)),
        }
        Ok(StandInPool {
            user_pool_id,
            client_id,
        })
    }

    /// Forgets the pool and its users (the tests' own pools).
    pub async fn delete_pool(&self, pool: &StandInPool) -> StandInResult<()> {
        self.client
            .delete_user_pool()
            .user_pool_id(&pool.user_pool_id)
            .send()
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// Gives `email` a permanent password (no change asked at the first sign-in), and the
    /// platform group when `operator`.
    pub async fn set_password(
        &self,
        pool: &StandInPool,
        email: &str,
        password: &str,
        operator: bool,
    ) -> StandInResult<()> {
        self.client
            .admin_set_user_password()
            .user_pool_id(&pool.user_pool_id)
            .username(email)
            .password(password)
            .permanent(true)
            .send()
            .await
            .map_err(failed)?;
        if operator {
            self.client
                .admin_add_user_to_group()
                .user_pool_id(&pool.user_pool_id)
                .username(email)
                .group_name(crate::auth::PLATFORM_GROUP)
                .send()
                .await
                .map_err(failed)?;
        }
        Ok(())
    }

    /// Signs in as the frontend would (`InitiateAuth`, `USER_PASSWORD_AUTH`): the ID and the
    /// access token.
    pub async fn sign_in(
        &self,
        pool: &StandInPool,
        email: &str,
        password: &str,
    ) -> StandInResult<(String, String)> {
        use aws_sdk_cognitoidentityprovider::types::AuthFlowType;
        let output = self
            .client
            .initiate_auth()
            .client_id(&pool.client_id)
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", email)
            .auth_parameters("PASSWORD", password)
            .send()
            .await
            .map_err(failed)?;
        let result = output.authentication_result().ok_or_else(|| {
            IdentityError::Unavailable("InitiateAuth answered a challenge".into())
        })?;
        match (result.id_token(), result.access_token()) {
            (Some(id), Some(access)) => Ok((id.to_owned(), access.to_owned())),
            _ => Err(IdentityError::Unavailable(
                "InitiateAuth answered no tokens".into(),
            )),
        }
    }
}
