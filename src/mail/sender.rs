//! The background sender: on every instance (like the pruner), it claims due outbox rows one at a
//! time ([`crate::db::outbox::claim`]: each row is taken by one sender), composes and sends each over
//! SMTP with `lettre`, and records the outcome — sent, or tried again after [`super::retry_delay`]
//! with the error kept. Every SMTP exchange is bounded by a timeout, so a server that hangs costs
//! the sender time, never a request, and never a mail.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use super::compose::compose;
use super::{Payload, SmtpSettings, TlsMode};
use crate::clock::Clock;
use crate::db::{self, outbox, Pool};
use crate::seal::Sealer;
use crate::util::duration_ms;

/// How long one SMTP command may take before the attempt fails (connect, greeting, each reply).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one whole send may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a claimed row is this sender's: longer than a send can take, so no other sender takes it
/// while it is being sent; a sender that died leaves it to others after this.
const LEASE: Duration = Duration::from_secs(120);

/// Everything the sender needs.
pub struct Sender {
    pub pool: Pool,
    pub clock: Clock,
    pub transport: AsyncSmtpTransport<Tokio1Executor>,
    pub from: Mailbox,
    pub public_url: String,
    pub seal: Sealer,
    /// How often it looks for due mail.
    pub poll: Duration,
}

/// The SMTP transport `settings` describe.
pub fn transport(settings: &SmtpSettings) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let params = || TlsParameters::new(settings.host.clone());
    let tls = match settings.tls {
        TlsMode::Opportunistic => Tls::Opportunistic(params()?),
        TlsMode::Required => Tls::Required(params()?),
        TlsMode::Wrapper => Tls::Wrapper(params()?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.clone())
        .port(settings.port)
        .tls(tls)
        .timeout(Some(COMMAND_TIMEOUT));
    if let Some((user, pass)) = &settings.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), pass.expose_secret().to_owned()));
    }
    Ok(builder.build())
}

/// How often (by the app's clock) mail that expired unsent is given up on: a write, so not every poll.
const EXPIRY_CHECK: Duration = Duration::from_secs(60);

impl Sender {
    /// Runs forever: every `poll`, sends what is due until nothing is; every minute, first gives up on
    /// mail that expired unsent.
    pub async fn run(self) {
        let mut last_expiry_check = i64::MIN;
        loop {
            let now = self.clock.now_ms();
            let check_expiry = now.saturating_sub(last_expiry_check) >= duration_ms(EXPIRY_CHECK);
            match self.round(check_expiry).await {
                Ok(_) if check_expiry => last_expiry_check = now,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "mail sender: database call failed; will try again"),
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// One round (after giving up on expired mail when `check_expiry`); returns how many mails were
    /// sent. An idle round is one read.
    pub async fn round(&self, check_expiry: bool) -> anyhow::Result<usize> {
        let now = self.clock.now_ms();
        let due = db::run(&self.pool, move |conn| {
            if check_expiry {
                let expired = outbox::fail_expired(conn, now)?;
                if expired > 0 {
                    tracing::warn!(expired, "mail sender: gave up on mail that expired unsent");
                    crate::metrics::mail_sent("expired", expired);
                }
            }
            Ok(outbox::any_due(conn, now)?)
        })
        .await?;
        let mut sent = 0;
        if !due {
            return Ok(sent);
        }
        loop {
            let now = self.clock.now_ms();
            let lease = duration_ms(LEASE);
            let Some(row) = db::run(&self.pool, move |conn| Ok(outbox::claim(conn, now, lease)?)).await? else {
                return Ok(sent);
            };
            let (id, attempts) = (row.id.clone(), row.attempts);
            let result = self.send(&row).await;
            let now = self.clock.now_ms();
            match result {
                Ok(()) => {
                    db::run(&self.pool, move |conn| Ok(outbox::mark_sent(conn, &id, now)?)).await?;
                    tracing::info!(mail = %row.id, kind = %row.kind, attempts, "mail sent");
                    crate::metrics::mail_sent("sent", 1);
                    sent += 1;
                }
                Err(e) => {
                    let error = crate::util::truncate(&format!("{e:#}"), 500);
                    let next = now + duration_ms(super::retry_delay(attempts));
                    tracing::warn!(mail = %row.id, kind = %row.kind, attempts, error = %error, "mail not sent; will retry");
                    crate::metrics::mail_sent("failed", 1);
                    db::run(&self.pool, move |conn| Ok(outbox::reschedule(conn, &id, next, &error)?)).await?;
                }
            }
        }
    }

    async fn send(&self, row: &outbox::Claimed) -> anyhow::Result<()> {
        let payload: Payload =
            serde_json::from_str(&row.payload).map_err(|e| anyhow::anyhow!("the stored mail cannot be read ({e})"))?;
        let token = match &payload {
            Payload::Invitation { token, .. } | Payload::PasswordReset { token, .. } => {
                let opened =
                    self.seal.open(&row.id, token).and_then(|t| String::from_utf8(t).ok()).ok_or_else(|| {
                        anyhow::anyhow!("the link in the stored mail cannot be opened (another key?)")
                    })?;
                Some(SecretString::from(opened))
            }
            Payload::NewDevice { .. } => None,
        };
        let mail = compose(&payload, token.as_ref(), &self.public_url);
        let to: Mailbox = row.recipient.parse().map_err(|e| anyhow::anyhow!("bad recipient address ({e})"))?;
        // The row's id in the Message-ID: a mail sent again after a crash (see the outbox) carries the
        // same one, so mail systems can tell it is the same mail.
        let message_id = format!("<{}@{}>", row.id, self.from.email.domain());
        let message = Message::builder()
            .message_id(Some(message_id))
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))?;
        match tokio::time::timeout(SEND_TIMEOUT, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(anyhow::anyhow!("SMTP: {e}")),
            Err(_) => Err(anyhow::anyhow!("SMTP: no answer within {}s", SEND_TIMEOUT.as_secs())),
        }
    }
}
