//! The domain key: its transfer to a second token the way `hkms init` copies it
//! (wrap-with-trusted under a transport key the SO marks trusted), and the wrap and unwrap
//! templates it carries, which the HSM must enforce.

use super::aes::known_secret;
use super::check::{ensure, rv_name, rv_of, During, Recorder, Stop, Verdict};
use super::context::{read_pin, Ctx};
use crate::hsm::crypto::{self, ModeFamily};
use crate::hsm::domain;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::types::AuthPin;

/// domain.transfer, unwrap.template, wrap.template.
pub fn checks(ctx: &mut Ctx, rec: &mut Recorder) {
    rec.run("domain.transfer", || transfer(ctx));
    // The SO step logged the user out and back in: make sure the run's login holds.
    let _ = ctx.login();
    rec.run("unwrap.template", || unwrap_template(ctx));
    rec.run("wrap.template", || wrap_template(ctx));
}

fn transfer(ctx: &Ctx) -> Result<Verdict, Stop> {
    let Some(second) = ctx.opts.second_token.clone() else {
        return Ok(Verdict::skip(
            "no second token (--second-token): the copy needs a token to receive it",
        ));
    };
    let Some(so_pin_file) = ctx.opts.so_pin_file.clone() else {
        return Ok(Verdict::skip(
            "no SO PIN (--so-pin-file): the security officer marks the transport key trusted",
        ));
    };
    ctx.require(&[
        MechanismType::AES_KEY_GEN,
        MechanismType::RSA_PKCS_KEY_PAIR_GEN,
        MechanismType::RSA_PKCS_OAEP,
        MechanismType::AES_KEY_WRAP_PAD,
    ])?;
    let so_pin = read_pin(&so_pin_file, "SO PIN file").map_err(|e| Stop(Verdict::fail(e.0)))?;
    let so_pin = AuthPin::from(so_pin.as_str().to_owned());
    let a = ctx.member("certify-source", &ctx.opts.token_label, &ctx.opts.pin_file)?;
    let b = ctx.member("certify-target", &second, &ctx.second_pin_file())?;
    let id = ctx.run_id.clone();
    let started = std::time::Instant::now();
    let result = (|| -> Result<Verdict, Stop> {
        domain::create(&a, &id).during("creating the domain key (as hkms init does)")?;
        // Without the SO's trust, the domain key cannot leave the token.
        let dk = a.domain_key()?;
        let untrusted = a.with_login_session(|s| {
            let t = crypto::generate_transport_key(s).map_err(|e| a.err(e))?;
            let wrapped = crypto::wrap_domain_key(s, t.public, dk);
            let _ = s.destroy_object(t.private);
            let _ = s.destroy_object(t.public);
            Ok(wrapped)
        })?;
        let untrusted_rv = match untrusted {
            Ok(_) => {
                return Ok(Verdict::fail(
                    "the domain key was wrapped under a public key nobody marked trusted",
                ))
            }
            Err(e) => rv_of(&e),
        };
        let copy_started = std::time::Instant::now();
        domain::transfer(&a, &b, &id, &so_pin)
            .during("copying the domain key (as hkms init does)")?;
        let copy_ms = copy_started.elapsed().as_secs_f64() * 1000.0;
        let copy = b.domain_key()?;
        let enforced = b.with_login_session(|s| {
            crypto::domain_key_enforces_unwrap_template(b.module_path(), s, copy)
                .map_err(|e| b.err(e))
        })?;
        ensure(enforced, || {
            "the copy on the second token lost its unwrap template".into()
        })?;
        Ok(Verdict::pass(format!(
            "domain key made on {:?} and copied to {second:?} under a trusted RSA-3072 \
             transport key (RSA-OAEP); a key wrapped on one unwraps on the other; the copy \
             keeps its unwrap template; an untrusted public key is refused ({})",
            ctx.opts.token_label,
            untrusted_rv.map(rv_name).unwrap_or_default()
        ))
        .rv(untrusted_rv)
        .figure("transfer_ms", copy_ms))
    })();
    domain::destroy(&a, &id);
    domain::destroy(&b, &id);
    result.map(|v| v.figure("total_ms", started.elapsed().as_secs_f64() * 1000.0))
}

/// hkms's unwrap template less `drop` (and with `replace` added).
fn version_template(drop: Option<AttributeType>, replace: Option<Attribute>) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
    ];
    t.extend(crypto::unwrap_template());
    if let Some(d) = drop {
        t.retain(|a| a.attribute_type() != d);
    }
    if let Some(r) = replace {
        t.retain(|a| a.attribute_type() != r.attribute_type());
        t.push(r);
    }
    t
}

fn unwrap_template(ctx: &Ctx) -> Result<Verdict, Stop> {
    ctx.require(&[MechanismType::AES_KEY_GEN, MechanismType::AES_KEY_WRAP_PAD])?;
    let s = ctx.session()?;
    let dk = crypto::generate_session_domain_key(&ctx.opts.module, &s, &ctx.run_id)
        .during("C_GenerateKey with CKA_WRAP_TEMPLATE and CKA_UNWRAP_TEMPLATE")?;
    let stored = crypto::domain_key_enforces_unwrap_template(&ctx.opts.module, &s, dk)
        .during("reading CKA_UNWRAP_TEMPLATE back")?;
    ensure(stored, || {
        "the key does not keep its CKA_UNWRAP_TEMPLATE (read back empty or different)".into()
    })?;
    let key = crypto::generate_version_key(&s, 256).during("C_GenerateKey")?;
    let blob = crypto::wrap_version_key(&s, dk, key).during("C_WrapKey under the domain key")?;
    crypto::unwrap_version_key(&s, dk, &blob, ModeFamily::Gcm)
        .during("C_UnwrapKey with hkms's template")?;
    let cases = [
        (
            "CKA_SENSITIVE left out",
            Some(AttributeType::Sensitive),
            None,
        ),
        (
            "CKA_WRAP_WITH_TRUSTED left out",
            Some(AttributeType::WrapWithTrusted),
            None,
        ),
        ("CKA_DERIVE left out", Some(AttributeType::Derive), None),
        (
            "CKA_SENSITIVE false",
            None,
            Some(Attribute::Sensitive(false)),
        ),
    ];
    let mut codes = Vec::new();
    for (what, drop, replace) in cases {
        match s.unwrap_key(
            &Mechanism::AesKeyWrapPad,
            dk,
            &blob,
            &version_template(drop, replace),
        ) {
            Ok(_) => {
                return Ok(Verdict::fail(format!(
                    "C_UnwrapKey accepted a template with {what}, against the unwrap template"
                )))
            }
            Err(e) => codes.push(rv_of(&e)),
        }
    }
    let first = codes.first().copied().flatten();
    Ok(Verdict::pass(format!(
        "the unwrap template is kept; hkms's template unwraps; templates with CKA_SENSITIVE, \
         CKA_WRAP_WITH_TRUSTED or CKA_DERIVE left out, or CKA_SENSITIVE false, are refused ({})",
        codes
            .iter()
            .map(|c| c.map(rv_name).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .rv(first))
}

fn wrap_template(ctx: &Ctx) -> Result<Verdict, Stop> {
    ctx.require(&[MechanismType::AES_KEY_GEN, MechanismType::AES_KEY_WRAP_PAD])?;
    let s = ctx.session()?;
    let dk = crypto::generate_session_domain_key(&ctx.opts.module, &s, &ctx.run_id)
        .during("C_GenerateKey with CKA_WRAP_TEMPLATE and CKA_UNWRAP_TEMPLATE")?;
    let sensitive = crypto::generate_version_key(&s, 256).during("C_GenerateKey")?;
    crypto::wrap_version_key(&s, dk, sensitive).during("C_WrapKey of a sensitive key")?;
    let (plain, _) = known_secret(&s, KeyType::AES, 32, &[Attribute::Encrypt(true)])?;
    let rv = match crypto::wrap_version_key(&s, dk, plain) {
        Ok(_) => {
            return Ok(Verdict::fail(
                "the domain key wrapped a non-sensitive key, against its wrap template",
            ))
        }
        Err(e) => rv_of(&e),
    };
    Ok(Verdict::pass(format!(
        "a sensitive key wraps; a non-sensitive one (lacking the wrap template's CKA_SENSITIVE) \
         is refused ({})",
        rv.map(rv_name).unwrap_or_default()
    ))
    .rv(rv))
}
