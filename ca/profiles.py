"""Certificate profiles to X.509 contents: subjects, validity and extensions. Pure."""

from __future__ import annotations

import calendar
import datetime as dt
import re
import unicodedata
import uuid
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from kinko.ca.config import Profile, Validity
from kinko.ca.errors import InputError

# RFC 5280 upper bounds (ub-common-name, ub-organization-name, ub-serial-number), which
# cryptography (and so Kinko) counts in UTF-8 bytes: a kanji takes three.
MAX_NAME = 64
# C0 and C1 controls, format characters (bidi overrides and isolates, zero-width spaces and
# joiners, BOM), line and paragraph separators, surrogates and private use.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})

_EKU = {
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "time_stamping": ExtendedKeyUsageOID.TIME_STAMPING,
}


@dataclass(frozen=True)
class IssuerURLs:
    """Where an issuer's OCSP responder, certificate and CRLs are served."""

    ocsp: str
    ca_issuers: str
    crl: str
    delta_crl: str


def issuer_urls(base_url: str, issuer: str) -> IssuerURLs:
    """URLs under base_url for an issuer named 'root' or 'issuing', as laid out in public/."""
    base = base_url.rstrip("/")
    return IssuerURLs(
        ocsp=base + "/",
        ca_issuers=f"{base}/ca/{issuer}.cer",
        crl=f"{base}/crl/{issuer}.crl",
        delta_crl=f"{base}/crl/{issuer}-delta.crl",
    )


def add_validity(not_before: dt.datetime, validity: Validity) -> dt.datetime:
    """Returns notAfter: the same instant n years (Feb 29 -> Feb 28) or n days later, minus 1 s."""
    if validity.years:
        year = not_before.year + validity.years
        day = min(not_before.day, calendar.monthrange(year, not_before.month)[1])
        end = not_before.replace(year=year, day=day)
    else:
        end = not_before + dt.timedelta(days=validity.days)
    return end - dt.timedelta(seconds=1)


def subject_name(
    common_name: str,
    organization: str | None = None,
    country: str | None = None,
    serial_number: str | None = None,
) -> x509.Name:
    """Builds a subject DN; names are UTF8String so Japanese survives, C is PrintableString."""
    attributes = []
    if country:
        if len(country) != 2 or not country.isascii() or not country.isalpha():
            raise InputError("country must be a two-letter ISO 3166 code, got {country!r}", country=country)
        attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country.upper()))
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, _checked("organization", organization)))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, _checked("name", common_name)))
    if serial_number:
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, _checked("subscriber id", serial_number)))
    return x509.Name(attributes)


def build_extensions(
    profile: Profile,
    *,
    subject_key: CertificateIssuerPublicKeyTypes,
    issuer_key: CertificateIssuerPublicKeyTypes,
    urls: IssuerURLs | None,
    policy_oid: str | None = None,
    alt_name: x509.GeneralName | None = None,
) -> list[tuple[x509.ExtensionType, bool]]:
    """Returns (extension, critical) pairs for a certificate made under this profile."""
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=profile.is_ca, path_length=profile.path_length if profile.is_ca else None), True),
        (_key_usage(profile.key_usage), True),
    ]
    if profile.extended_key_usage:
        extensions.append((x509.ExtendedKeyUsage([_EKU[name] for name in profile.extended_key_usage]), False))
    if profile.subject_key_identifier:
        extensions.append((x509.SubjectKeyIdentifier.from_public_key(subject_key), False))
    if profile.authority_key_identifier:
        extensions.append((x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), False))
    if urls is not None:
        if profile.crl_distribution_point:
            extensions.append((x509.CRLDistributionPoints([_point(urls.crl)]), False))
        if profile.freshest_crl:
            extensions.append((x509.FreshestCRL([_point(urls.delta_crl)]), False))
        if profile.authority_info_access:
            descriptions = []
            if not profile.ocsp_no_check:
                descriptions.append(
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(urls.ocsp)
                    )
                )
            descriptions.append(
                x509.AccessDescription(
                    AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(urls.ca_issuers)
                )
            )
            extensions.append((x509.AuthorityInformationAccess(descriptions), False))
    if profile.certificate_policies and policy_oid:
        policy = x509.PolicyInformation(x509.ObjectIdentifier(policy_oid), None)
        extensions.append((x509.CertificatePolicies([policy]), False))
    if profile.subject_alt_name:
        if alt_name is None:
            raise InputError(
                "profile {profile!r} puts a subjectAltName in its certificates: none was given", profile=profile.name
            )
        # Not critical: the subject DN is not empty (RFC 5280 4.2.1.6).
        extensions.append((x509.SubjectAlternativeName([alt_name]), False))
    if profile.ocsp_no_check:
        extensions.append((x509.OCSPNoCheck(), False))
    return extensions


def holder_alt_name(email: str | None, subscriber_id: str | None, base_url: str) -> x509.GeneralName:
    """The subjectAltName naming a holder: the e-mail address when recorded, else a URI naming the
    subscriber under the CA's base URL, else (no subscriber) one unique to this certificate's holder.
    (Not a urn:uuid: pkilint, after RFC 5280 4.2.1.6, wants a URI with an authority.)"""
    if email:
        return x509.RFC822Name(email)
    base = base_url.rstrip("/")
    if subscriber_id:
        return x509.UniformResourceIdentifier(f"{base}/subscribers/{subscriber_id}")
    return x509.UniformResourceIdentifier(f"{base}/holders/{uuid.uuid4()}")


_EMAIL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
MAX_EMAIL = 254  # RFC 5321's path limit, less the angle brackets


def checked_email(value: str) -> str:
    """An e-mail address as a certificate's rfc822Name holds it (IA5String: ASCII only)."""
    value = value.strip()
    if not value.isascii():
        raise InputError(
            "e-mail address {value!r} is not ASCII: a certificate's rfc822Name holds ASCII addresses only", value=value
        )
    if len(value) > MAX_EMAIL:
        raise InputError("e-mail address is {length} characters; at most {limit}", length=len(value), limit=MAX_EMAIL)
    local = value.rpartition("@")[0]
    if not _EMAIL.fullmatch(value) or local.startswith(".") or local.endswith(".") or ".." in local or len(local) > 64:
        raise InputError("e-mail address {value!r} is not of the form name@domain.example", value=value)
    return value


def _point(url: str) -> x509.DistributionPoint:
    return x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)


def _key_usage(names: tuple[str, ...]) -> x509.KeyUsage:
    flags = {
        "digital_signature": False,
        "content_commitment": False,
        "key_encipherment": False,
        "data_encipherment": False,
        "key_agreement": False,
        "key_cert_sign": False,
        "crl_sign": False,
    }
    for name in names:
        flags[name] = True
    return x509.KeyUsage(**flags, encipher_only=False, decipher_only=False)


def _checked(label: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise InputError("{label} must not be empty", label=label)
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        # Bytes that are not UTF-8 reach us from argv as lone surrogates (surrogateescape).
        raise InputError("{label} is not valid UTF-8 text", label=label) from None
    for ch in value:
        if unicodedata.category(ch) in _INVISIBLE:
            # By name: a right-to-left override or a zero-width space is invisible in the message too.
            what = unicodedata.name(ch, "a control character")
            raise InputError(
                "{label} contains U+{code} {what}; control and formatting characters are refused",
                label=label,
                code=format(ord(ch), "04X"),
                what=what,
            )
    if size > MAX_NAME:
        raise InputError(
            "{label} is {length} characters ({size} bytes in UTF-8); a certificate holds at most "
            "{limit} bytes: {limit} ASCII characters or {kana} kanji or kana",
            label=label,
            length=len(value),
            size=size,
            limit=MAX_NAME,
            kana=MAX_NAME // 3,
        )
    return value
