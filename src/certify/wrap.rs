//! The domain key: its transfer to a second token the way `hkms init` copies it
//! (wrap-with-trusted under a transport key the SO marks trusted), and the wrap and unwrap
//! templates it carries, which the HSM must enforce.

use super::aes::known_secret;
use super::check::{ensure, rv_name, rv_of, During, Recorder, Stop, Verdict};
use super::context::{read_pin, Ctx};
use crate::hsm::crypto::{self, keywrap, ModeFamily};
use crate::hsm::domain;
use cryptoki::mechanism::MechanismType;
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
    let a = ctx.member("certify-source")?;
    if !a.can_give_domain_key() {
        // hkms never asks such a member for the domain key (domain::transfer refuses it):
        // the copy is made from another member of the cluster.
        return Ok(Verdict::skip(format!(
            "HSM profile {:?} says the device cannot mark a wrapping key trusted \
             (CKA_TRUSTED): it cannot give the domain key, only receive it (certify it as \
             --second-token of another implementation with --second-module)",
            a.profile_name()
        )));
    }
    let b = ctx.second_member("certify-target")?;
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
        let library = |m: &std::path::Path| {
            m.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let across = match &ctx.opts.second_module {
            Some(m) if m != &ctx.opts.module => {
                format!(" ({} to {})", library(&ctx.opts.module), library(m))
            }
            _ => String::new(),
        };
        Ok(Verdict::pass(format!(
            "domain key made on {:?} and copied to {second:?}{across} under a trusted \
             RSA-3072 transport key (RSA-OAEP); a key wrapped on one unwraps on the other; the \
             copy keeps its unwrap template; an untrusted public key is refused ({})",
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
    crypto::unwrap_version_key(&s, dk, &blob, ModeFamily::Gcm, true)
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
    // PKCS#11 applies the unwrap template before the caller's: an attribute the caller
    // leaves out may be refused (SoftHSM2) or taken from the unwrap template (Kryoptic);
    // either enforces it. A value against the template must be refused.
    let mut outcomes = Vec::new();
    let mut first = None;
    for (what, drop, replace) in cases {
        match keywrap::unwrap(&s, dk, &blob, &version_template(drop, replace)) {
            Ok(key) => {
                let held = match drop {
                    Some(left_out) => holds_unwrap_template(&s, key, left_out)?,
                    None => false,
                };
                let _ = s.destroy_object(key);
                if !held {
                    return Ok(Verdict::fail(format!(
                        "C_UnwrapKey accepted a template with {what}, against the unwrap \
                         template"
                    )));
                }
                outcomes.push(format!("{what}: taken from the unwrap template"));
            }
            Err(e) => {
                let rv = rv_of(&e);
                first = first.or(rv);
                outcomes.push(format!(
                    "{what}: refused ({})",
                    rv.map(rv_name).unwrap_or_default()
                ));
            }
        }
    }
    Ok(Verdict::pass(format!(
        "the unwrap template is kept; hkms's template unwraps; {}",
        outcomes.join("; ")
    ))
    .rv(first))
}

/// Whether `key` holds the unwrap template's value of `attribute` (the caller left it out).
fn holds_unwrap_template(
    s: &cryptoki::session::Session,
    key: cryptoki::object::ObjectHandle,
    attribute: AttributeType,
) -> Result<bool, Stop> {
    let read = s
        .get_attributes(key, &[attribute])
        .during("reading back an attribute of the unwrapped key")?;
    Ok(crypto::unwrap_template()
        .iter()
        .any(|want| read.iter().any(|got| got == want)))
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
