//! The one corner of hkms with `unsafe` code: PKCS#11 calls that the `cryptoki` crate cannot
//! express.
//!
//! cryptoki has no attribute whose value is itself a template (`CKA_WRAP_TEMPLATE`,
//! `CKA_UNWRAP_TEMPLATE`). The domain key carries both, so its creation, its unwrap on a new
//! member and reading its unwrap template back go through the library's own function list,
//! on sessions that cryptoki opened. Loading the same library path again returns the same
//! loaded library (and so the same sessions and objects); it stays loaded for the process.

#![allow(unsafe_code)]

use cryptoki::error::{Error, Result, Rv};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::{
    CKR_OK, CK_ATTRIBUTE, CK_ATTRIBUTE_TYPE, CK_FUNCTION_LIST, CK_MECHANISM, CK_OBJECT_HANDLE,
    CK_RV, CK_ULONG,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// A library's PKCS#11 function list.
struct Functions {
    _library: cryptoki_sys::Pkcs11,
    list: *const CK_FUNCTION_LIST,
}

// SAFETY: the function list is immutable data owned by the loaded library, which `_library`
// keeps loaded; PKCS#11 libraries initialised with OS locking may be called from any thread.
unsafe impl Send for Functions {}
unsafe impl Sync for Functions {}

static LOADED: OnceLock<Mutex<HashMap<PathBuf, Arc<Functions>>>> = OnceLock::new();

fn functions(path: &Path) -> Result<Arc<Functions>> {
    let registry = LOADED.get_or_init(|| Mutex::new(HashMap::new()));
    let mut loaded = registry.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = loaded.get(path) {
        return Ok(f.clone());
    }
    // SAFETY: the same library cryptoki already loaded and initialised (module::load runs
    // first); C_GetFunctionList writes one pointer to static data of the library.
    let f = unsafe {
        let library = cryptoki_sys::Pkcs11::new(path).map_err(Error::LibraryLoading)?;
        let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
        let rv = library.C_GetFunctionList(&mut list);
        check(rv, cryptoki::context::Function::GetFunctionList)?;
        if list.is_null() {
            return Err(Error::NullFunctionPointer);
        }
        Functions {
            _library: library,
            list,
        }
    };
    let f = Arc::new(f);
    loaded.insert(path.to_owned(), f.clone());
    Ok(f)
}

fn check(rv: CK_RV, function: cryptoki::context::Function) -> Result<()> {
    if rv == CKR_OK {
        return Ok(());
    }
    Rv::from(rv).into_result(function)
}

/// A template with nested templates, laid out as `CK_ATTRIBUTE`s. Every pointer in it points
/// into `plain`, the nested templates' attributes or `_nested`, which all outlive it.
struct RawTemplate<'a> {
    _nested: Vec<Vec<CK_ATTRIBUTE>>,
    attributes: Vec<CK_ATTRIBUTE>,
    _values: std::marker::PhantomData<&'a [Attribute]>,
}

impl<'a> RawTemplate<'a> {
    fn new(plain: &'a [Attribute], nested: &[(CK_ATTRIBUTE_TYPE, &'a [Attribute])]) -> Self {
        let mut attributes: Vec<CK_ATTRIBUTE> = plain.iter().map(CK_ATTRIBUTE::from).collect();
        let arrays: Vec<Vec<CK_ATTRIBUTE>> = nested
            .iter()
            .map(|(_, t)| t.iter().map(CK_ATTRIBUTE::from).collect())
            .collect();
        for ((kind, _), array) in nested.iter().zip(&arrays) {
            attributes.push(CK_ATTRIBUTE {
                type_: *kind,
                pValue: array.as_ptr() as *mut _,
                ulValueLen: std::mem::size_of_val(array.as_slice()) as CK_ULONG,
            });
        }
        RawTemplate {
            _nested: arrays,
            attributes,
            _values: std::marker::PhantomData,
        }
    }
}

/// `CKA_WRAP_TEMPLATE` and `CKA_UNWRAP_TEMPLATE` of a key; an empty one is left out of the
/// template (for devices that refuse the attribute).
#[derive(Debug, Clone, Copy)]
pub struct KeyTemplates<'a> {
    pub wrap: &'a [Attribute],
    pub unwrap: &'a [Attribute],
}

impl<'a> KeyTemplates<'a> {
    fn nested(&self) -> Vec<(CK_ATTRIBUTE_TYPE, &'a [Attribute])> {
        [
            (cryptoki_sys::CKA_WRAP_TEMPLATE, self.wrap),
            (cryptoki_sys::CKA_UNWRAP_TEMPLATE, self.unwrap),
        ]
        .into_iter()
        .filter(|(_, t)| !t.is_empty())
        .collect()
    }
}

/// `C_GenerateKey` with `template` plus the wrap and unwrap templates.
pub fn generate_key(
    module: &Path,
    session: &Session,
    mechanism: &Mechanism,
    template: &[Attribute],
    templates: KeyTemplates,
) -> Result<ObjectHandle> {
    let f = functions(module)?;
    let mut raw = RawTemplate::new(template, &templates.nested());
    let mut mechanism = CK_MECHANISM::from(mechanism);
    let mut handle: CK_OBJECT_HANDLE = 0;
    // SAFETY: every pointer passed points into `raw`, `mechanism` or `handle`, alive for the
    // call; the function pointer comes from the library's own list.
    let rv = unsafe {
        let call = (*f.list).C_GenerateKey.ok_or(Error::NullFunctionPointer)?;
        call(
            session.handle(),
            &mut mechanism,
            raw.attributes.as_mut_ptr(),
            raw.attributes.len() as CK_ULONG,
            &mut handle,
        )
    };
    check(rv, cryptoki::context::Function::GenerateKey)?;
    // SAFETY: a handle the library just returned for this session.
    Ok(unsafe { ObjectHandle::new_from_raw(handle) })
}

/// `C_UnwrapKey` into `template` plus the wrap and unwrap templates.
pub fn unwrap_key(
    module: &Path,
    session: &Session,
    mechanism: &Mechanism,
    unwrapping_key: ObjectHandle,
    wrapped: &[u8],
    template: &[Attribute],
    templates: KeyTemplates,
) -> Result<ObjectHandle> {
    let f = functions(module)?;
    let mut raw = RawTemplate::new(template, &templates.nested());
    let mut mechanism = CK_MECHANISM::from(mechanism);
    let mut wrapped = wrapped.to_vec();
    let mut handle: CK_OBJECT_HANDLE = 0;
    // SAFETY: as in `generate_key`; `wrapped` is a private copy the library only reads.
    let rv = unsafe {
        let call = (*f.list).C_UnwrapKey.ok_or(Error::NullFunctionPointer)?;
        call(
            session.handle(),
            &mut mechanism,
            unwrapping_key.handle(),
            wrapped.as_mut_ptr(),
            wrapped.len() as CK_ULONG,
            raw.attributes.as_mut_ptr(),
            raw.attributes.len() as CK_ULONG,
            &mut handle,
        )
    };
    check(rv, cryptoki::context::Function::UnwrapKey)?;
    // SAFETY: a handle the library just returned for this session.
    Ok(unsafe { ObjectHandle::new_from_raw(handle) })
}

/// Most attributes accepted in a template read back from an HSM.
const MAX_TEMPLATE_ATTRIBUTES: usize = 64;
/// Largest attribute value accepted in a template read back from an HSM (bytes).
const MAX_TEMPLATE_VALUE_LEN: CK_ULONG = 1024;

/// Attributes read back from a template attribute: each type with its raw value bytes.
pub type RawAttributes = Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>;

/// The attribute types in `object`'s `CKA_UNWRAP_TEMPLATE` with their values (booleans and
/// integers as raw bytes); `None` when the object has no unwrap template.
pub fn unwrap_template(
    module: &Path,
    session: &Session,
    object: ObjectHandle,
) -> Result<Option<RawAttributes>> {
    let f = functions(module)?;
    // SAFETY: `f.list` points at the library's function list, valid while `f` lives.
    let get = unsafe { (*f.list).C_GetAttributeValue }.ok_or(Error::NullFunctionPointer)?;
    let mut outer = CK_ATTRIBUTE {
        type_: cryptoki_sys::CKA_UNWRAP_TEMPLATE,
        pValue: std::ptr::null_mut(),
        ulValueLen: 0,
    };
    // SAFETY: a length query: the library writes only `outer.ulValueLen`.
    let rv = unsafe { get(session.handle(), object.handle(), &mut outer, 1) };
    if rv == cryptoki_sys::CKR_ATTRIBUTE_TYPE_INVALID || outer.ulValueLen == 0 {
        return Ok(None);
    }
    check(rv, cryptoki::context::Function::GetAttributeValue)?;
    if outer.ulValueLen == cryptoki_sys::CK_UNAVAILABLE_INFORMATION {
        return Ok(None);
    }
    let count = outer.ulValueLen as usize / std::mem::size_of::<CK_ATTRIBUTE>();
    if count == 0 || count > MAX_TEMPLATE_ATTRIBUTES {
        return Err(Error::Pkcs11(
            cryptoki::error::RvError::AttributeValueInvalid,
            cryptoki::context::Function::GetAttributeValue,
        ));
    }
    // Entries whose type is CK_UNAVAILABLE_INFORMATION ask the library to name the types
    // (PKCS#11 3.2's discovery step): Kryoptic refuses other types here with
    // CKR_TEMPLATE_INCONSISTENT, SoftHSM2 overwrites whatever it finds.
    let mut inner = vec![
        CK_ATTRIBUTE {
            type_: cryptoki_sys::CK_UNAVAILABLE_INFORMATION,
            pValue: std::ptr::null_mut(),
            ulValueLen: 0,
        };
        count
    ];
    outer.pValue = inner.as_mut_ptr() as *mut _;
    outer.ulValueLen = std::mem::size_of_val(inner.as_slice()) as CK_ULONG;
    // SAFETY: second call of the array-attribute protocol: the library fills the types and
    // lengths of at most the `count` entries `outer.ulValueLen` announces.
    let rv = unsafe { get(session.handle(), object.handle(), &mut outer, 1) };
    check(rv, cryptoki::context::Function::GetAttributeValue)?;
    if inner
        .iter()
        .any(|a| a.ulValueLen == 0 || a.ulValueLen > MAX_TEMPLATE_VALUE_LEN)
    {
        return Err(Error::Pkcs11(
            cryptoki::error::RvError::AttributeValueInvalid,
            cryptoki::context::Function::GetAttributeValue,
        ));
    }
    let mut values: Vec<Vec<u8>> = inner
        .iter()
        .map(|a| vec![0u8; a.ulValueLen as usize])
        .collect();
    for (a, v) in inner.iter_mut().zip(values.iter_mut()) {
        a.pValue = v.as_mut_ptr() as *mut _;
    }
    outer.ulValueLen = std::mem::size_of_val(inner.as_slice()) as CK_ULONG;
    // SAFETY: third call: each entry points at a buffer of the length (checked above) the
    // library reported for it.
    let rv = unsafe { get(session.handle(), object.handle(), &mut outer, 1) };
    check(rv, cryptoki::context::Function::GetAttributeValue)?;
    Ok(Some(inner.iter().map(|a| a.type_).zip(values).collect()))
}

/// `C_CloseAllSessions` on `slot`: closes every session this process has on the token
/// (cryptoki has no call for it). Sessions cryptoki still holds become invalid handles.
pub fn close_all_sessions(module: &Path, slot: cryptoki::slot::Slot) -> Result<()> {
    let f = functions(module)?;
    // SAFETY: takes a slot id by value; the function pointer comes from the library's list.
    let rv = unsafe {
        let call = (*f.list)
            .C_CloseAllSessions
            .ok_or(Error::NullFunctionPointer)?;
        call(slot.id())
    };
    check(rv, cryptoki::context::Function::CloseAllSessions)
}

/// A mechanism without parameters by its number, for standard mechanisms that cryptoki has
/// no name for (`CKM_AES_KEY_WRAP_KWP`).
pub fn plain_mechanism(value: cryptoki_sys::CK_MECHANISM_TYPE) -> Mechanism<'static> {
    Mechanism::VendorDefined(
        cryptoki::mechanism::vendor_defined::VendorDefinedMechanism::new::<()>(
            mechanism_type(value),
            None,
        ),
    )
}

/// A mechanism type by its number, for standard mechanisms that cryptoki has no name for
/// (to ask `C_GetMechanismInfo` about `CKM_AES_KEY_WRAP_KWP`).
pub fn mechanism_type(
    value: cryptoki_sys::CK_MECHANISM_TYPE,
) -> cryptoki::mechanism::MechanismType {
    // SAFETY: MechanismType is `#[repr(transparent)]` over CK_MECHANISM_TYPE (cryptoki
    // declares it so that the two have the same layout), so every value is a valid one.
    unsafe {
        std::mem::transmute::<cryptoki_sys::CK_MECHANISM_TYPE, cryptoki::mechanism::MechanismType>(
            value,
        )
    }
}

/// `C_GetMechanismList` of `slot`, every number as the library lists it (cryptoki drops the
/// ones it has no name for, among them `CKM_AES_KEY_WRAP_KWP`).
pub fn mechanism_list(
    module: &Path,
    slot: cryptoki::slot::Slot,
) -> Result<Vec<cryptoki_sys::CK_MECHANISM_TYPE>> {
    let f = functions(module)?;
    // SAFETY: `f.list` points at the library's function list, valid while `f` lives.
    let list = unsafe { (*f.list).C_GetMechanismList }.ok_or(Error::NullFunctionPointer)?;
    let mut count: CK_ULONG = 0;
    // SAFETY: a length query: the library writes only `count`.
    let rv = unsafe { list(slot.id(), std::ptr::null_mut(), &mut count) };
    check(rv, cryptoki::context::Function::GetMechanismList)?;
    let mut out: Vec<cryptoki_sys::CK_MECHANISM_TYPE> = vec![0; count as usize];
    // SAFETY: `out` has room for the `count` entries the library announced; it writes at
    // most `count` and sets `count` to how many it wrote.
    let rv = unsafe { list(slot.id(), out.as_mut_ptr(), &mut count) };
    check(rv, cryptoki::context::Function::GetMechanismList)?;
    out.truncate(count as usize);
    Ok(out)
}
