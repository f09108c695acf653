//! The presign API on the endpoint: `GET /_s3gate/presign` mints presigned URLs for the
//! caller (see `presign::api` for the query and the answer).

use http::{Request, Response};

use super::record::RequestContext;
use super::{access, host_of, Gateway};
use crate::body::Body;
use crate::error::S3Error;

impl Gateway {
    /// `GET /_s3gate/presign?bucket=&key=&method=&expires=`: SigV4-authenticated like any
    /// request; the caller can only mint what its own policy allows, signed with its own
    /// credential (so revoking the credential revokes its URLs).
    pub(super) fn presign_api<B>(&self, req: &Request<B>, ctx: &mut RequestContext) -> Result<Response<Body>, S3Error> {
        let (verified, session) =
            self.authenticate(req, ctx).inspect_err(|e| self.metrics.auth_failure(e.code.as_str()))?;
        ctx.access_key_id = Some(verified.access_key_id.clone());
        if session.is_some() {
            // A minted URL is signed with a long-term credential and would outlive the session.
            return Err(S3Error::access_denied());
        }
        let mint = crate::presign::api::api_request(req.uri().query())?;
        let target = mint.as_s3_request()?;
        let principal = access::Principal { access_key_id: &verified.access_key_id, session: None };
        let policies: Vec<_> = self.config.keys.policy(&verified.access_key_id).into_iter().collect();
        access::check_policy(&policies, &target, req.headers(), ctx.client.ip(), ctx.secure, principal)
            .inspect_err(|_| self.metrics.policy_denied(target.action))?;
        ctx.s3 = Some(target);
        let credential = self.config.keys.credential(&verified.access_key_id).ok_or_else(S3Error::internal)?;
        let public_url = self.public_url(req, ctx)?;
        let now = time::OffsetDateTime::now_utc();
        let minted = crate::presign::mint(
            &mint,
            &credential,
            &public_url,
            &self.config.domains,
            &self.config.upstream.region,
            now,
        )?;
        Ok(crate::presign::api::api_response(&minted))
    }

    pub(super) fn public_url<B>(&self, req: &Request<B>, ctx: &RequestContext) -> Result<http::Uri, S3Error> {
        match &self.config.public_url {
            Some(url) => Ok(url.clone()),
            None => Ok(crate::presign::public_url_from_host(host_of(req).unwrap_or_default(), ctx.secure)?),
        }
    }
}
