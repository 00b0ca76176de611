// Kinko's enrollment page: the key pair is made here, in the holder's browser (WebCrypto), and never
// leaves it except inside the password-protected PKCS#12 the holder downloads. The CA receives only
// the PKCS#10 request. Built by ../build.sh into ../enroll/enroll.js (one file: the page's CSP allows
// scripts from its own origin only).
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";

const ITERATIONS = 100000; // PBKDF2 for the key and certificate bags, and the MAC's KDF
const AES = { name: "AES-CBC", length: 256 };
const KEYS = {
  "ec-p256": { name: "ECDSA", namedCurve: "P-256" },
  "rsa-2048": { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
};

export const TEXT = {
  ja: {
    title: "電子証明書の取得",
    lead: "銀行から届いた登録コードを入力し、証明書ファイルのパスワードを決めてください。鍵はこのパソコンの中で作られ、銀行には送られません。",
    code: "登録コード",
    password: "証明書ファイルのパスワード（8文字以上）",
    confirm: "パスワード（確認）",
    keyType: "鍵の種類",
    submit: "電子証明書取得",
    working: "鍵を作成し、証明書を取得しています…",
    done: "電子証明書を取得しました。下のファイルを保存し、ブラウザーまたはOSに取り込んでください（取り込みの際に上で決めたパスワードを入力します）。",
    download: "証明書ファイルを保存",
    serial: "シリアル番号",
    notAfter: "有効期限",
    loginTitle: "電子証明書の状態",
    renewLead: "有効期限が近づいています。新しい鍵を作り、証明書を更新してください。",
    renew: "証明書更新",
    renewed: "電子証明書を更新しました。以前の証明書はこの時点で使えなくなりました。下のファイルを保存して取り込み、以前の証明書は削除してください。",
    states: {
      valid: (s) => `有効です（残り${s.days_left}日）。`,
      "renewal-open": (s) => `更新の受付期間です（${s.closes_at} まで）。`,
      "on-hold": () => "一時停止中です。お取引の銀行にお問い合わせください。",
      revoked: (s) => `失効しています（${s.reason}）。`,
      other: (s) => `状態: ${s.state}`,
    },
    importHelp:
      "Windows: 保存したファイルをダブルクリックし、「証明書のインポート ウィザード」に従います。macOS: ダブルクリックしてキーチェーンに追加します（古い macOS のキーチェーンはこのファイルの暗号方式 AES-256 を読めないことがあります。その場合は macOS を更新するか、Firefox の 設定 → プライバシーとセキュリティ → 証明書を表示 → あなたの証明書 → インポート で取り込んでください）。Chrome/Edge: 設定 → プライバシーとセキュリティ → セキュリティ → 証明書の管理 → インポート。",
    mismatch: "確認用のパスワードが一致しません。",
    short: "パスワードは8文字以上にしてください。",
    noCode: "登録コードを入力してください。",
    wrongCode: "登録コードが正しくないか、使用済みまたは有効期限切れです。銀行から届いた最新の登録コードをご確認ください。",
    locked: "登録コードの誤りが続いたため、しばらく受け付けできません。15分ほど待ってから、もう一度お試しください。",
    windowClosed: "現在は更新の受付期間ではありません。",
    opensAt: (when) => `受付開始: ${when}`,
    expiredRenew: "電子証明書の有効期限が切れているため、更新できません。有効期限が切れてから90日以内であれば、電子証明書の取得ページで以前の証明書ファイルを使って再取得できます。",
    failed: "電子証明書を取得できませんでした。",
    unsupported: "このブラウザーでは証明書を作成できません。最新の Chrome、Edge、Firefox または Safari をお使いください。",
    reacquireTitle: "再取得（有効期限が切れた方）",
    reacquireLead: "有効期限が切れてから90日以内であれば、以前の証明書ファイルで本人確認をして、新しい証明書を取得できます。",
    oldFile: "以前の証明書ファイル（.p12）",
    oldPassword: "以前の証明書ファイルのパスワード",
    reacquire: "再取得",
    noFile: "以前の証明書ファイルを選んでください。",
    badFile: "以前の証明書ファイルを開けません。パスワードが違うか、ファイルが壊れています。",
    reacquired: "電子証明書を再取得しました。下のファイルを保存し、取り込んでください。",
  },
  en: {
    title: "Get your client certificate",
    lead: "Type the enrollment code the bank sent you and choose a password for the certificate file. The key is made on this computer and is never sent to the bank.",
    code: "Enrollment code",
    password: "Password for the certificate file (8 characters or more)",
    confirm: "Password again",
    keyType: "Key type",
    submit: "Get certificate",
    working: "Making the key and getting the certificate…",
    done: "Your certificate is ready. Save the file below and import it into your browser or operating system (it asks for the password you chose).",
    download: "Save the certificate file",
    serial: "Serial number",
    notAfter: "Valid until",
    loginTitle: "Your client certificate",
    renewLead: "Your certificate expires soon. Make a new key and renew it.",
    renew: "Renew certificate",
    renewed: "Your certificate is renewed, and the previous one no longer works. Save the file below, import it, and delete the previous certificate.",
    states: {
      valid: (s) => `Valid (${s.days_left} days left).`,
      "renewal-open": (s) => `Renewal is open (until ${s.closes_at}).`,
      "on-hold": () => "On hold. Please contact your bank.",
      revoked: (s) => `Revoked (${s.reason}).`,
      other: (s) => `State: ${s.state}`,
    },
    importHelp:
      "Windows: double-click the file and follow the Certificate Import Wizard. macOS: double-click it to add it to Keychain (an older macOS Keychain may not read this file's AES-256 protection: then update macOS, or import it in Firefox under Settings → Privacy & Security → View Certificates → Your Certificates → Import). Chrome/Edge: Settings → Privacy and security → Security → Manage certificates → Import.",
    mismatch: "The two passwords differ.",
    short: "Use a password of 8 characters or more.",
    noCode: "Type the enrollment code.",
    wrongCode: "The enrollment code is wrong, already used or expired. Check the latest code the bank sent you.",
    locked: "Too many wrong codes: codes are not accepted for a while. Wait 15 minutes and try again.",
    windowClosed: "Renewal is not open now.",
    opensAt: (when) => ` It opens at ${when}.`,
    expiredRenew: "Your certificate has expired, so it cannot be renewed. Within 90 days after it expired, re-acquire it on the certificate page with your previous certificate file.",
    failed: "The certificate could not be issued.",
    unsupported: "This browser cannot make the certificate. Use a current Chrome, Edge, Firefox or Safari.",
    reacquireTitle: "Re-acquire (your certificate has expired)",
    reacquireLead: "Within 90 days after your certificate expired, your previous certificate file proves who you are, and you get a new certificate.",
    oldFile: "Previous certificate file (.p12)",
    oldPassword: "Password of the previous file",
    reacquire: "Re-acquire",
    noFile: "Choose your previous certificate file.",
    badFile: "The previous certificate file cannot be opened: the password is wrong or the file is damaged.",
    reacquired: "Your certificate is re-acquired. Save the file below and import it.",
  },
};

/** The page's language: English only when the browser prefers it to Japanese. */
export function language(preferred) {
  for (const tag of preferred || []) {
    const primary = String(tag).toLowerCase().split("-")[0];
    if (primary === "ja" || primary === "en") return primary;
  }
  return "ja";
}

/** The bank's zone, which holders read times in (the API's are UTC), as Kinko's own output shows them. */
export const BANK_ZONE = "Asia/Tokyo";

/** A time as the holder reads it: `2027-11-25 19:46:08 +09:00`, in the bank's zone, offset always given. */
export function shownTime(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return String(iso || "");
  const format = new Intl.DateTimeFormat("en-US", {
    timeZone: BANK_ZONE,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
    timeZoneName: "longOffset",
  });
  const part = Object.fromEntries(format.formatToParts(when).map((p) => [p.type, p.value]));
  const offset = part.timeZoneName.replace("GMT", "") || "+00:00";
  return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute}:${part.second} ${offset}`;
}

/** What to tell the holder for a refusal (an RFC 9457 problem document from the API). */
export function refusal(text, status, detail) {
  const said = String(detail || "");
  if (said.includes("too many wrong codes")) return text.locked;
  if (said.includes("enrollment code is not valid")) return text.wrongCode;
  if (said.includes("renewal is closed")) return text.expiredRenew;
  if (said.includes("opens at")) {
    // The API's detail is English: only the opening time is carried over into the holder's language.
    const when = said.match(/opens at (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2}))/);
    return when ? `${text.windowClosed}${text.opensAt(shownTime(when[1]))}` : text.windowClosed;
  }
  return `${text.failed}（${status}: ${said || "no detail"}）`;
}

function pem(label, der) {
  const base64 = btoa(String.fromCharCode(...new Uint8Array(der)));
  return `-----BEGIN ${label}-----\n${base64.match(/.{1,64}/g).join("\n")}\n-----END ${label}-----\n`;
}

function derOf(pemText) {
  const body = pemText.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  return Uint8Array.from(atob(body), (c) => c.charCodeAt(0)).buffer;
}

const EC_KEY = "1.2.840.10045.2.1";
const RSA_KEY = "1.2.840.113549.1.1.1";

/** The key and certificate of a holder's previous PKCS#12 (as this page made it): the proof for a re-acquisition. */
export async function openPkcs12(data, password) {
  const secret = new TextEncoder().encode(password).buffer;
  const parsed = asn1js.fromBER(data);
  if (parsed.offset === -1) throw new Error("not a PKCS#12 file");
  const pfx = new pkijs.PFX({ schema: parsed.result });
  await pfx.parseInternalValues({ password: secret, checkIntegrity: true });
  const safes = pfx.parsedValue.authenticatedSafe;
  await safes.parseInternalValues({ safeContents: safes.safeContents.map(() => ({ password: secret })) });
  let pkcs8 = null;
  let keyId = null;
  const certificates = [];
  for (const { value } of safes.parsedValue.safeContents) {
    for (const bag of value.safeBags) {
      const id = (bag.bagAttributes || []).find((a) => a.type === "1.2.840.113549.1.9.21");
      if (bag.bagId === "1.2.840.113549.1.12.10.1.2") {
        await bag.bagValue.parseInternalValues({ password: secret });
        pkcs8 = bag.bagValue.parsedValue.toSchema().toBER(false);
        keyId = id ? id.values[0].valueBlock.valueHexView.join(",") : null;
      } else if (bag.bagId === "1.2.840.113549.1.12.10.1.3") {
        certificates.push({ certificate: bag.bagValue.parsedValue, keyId: id ? id.values[0].valueBlock.valueHexView.join(",") : null });
      }
    }
  }
  const leaf = certificates.find((c) => keyId && c.keyId === keyId) || certificates[0];
  if (!pkcs8 || !leaf) throw new Error("no key or certificate in the file");
  const kind = leaf.certificate.subjectPublicKeyInfo.algorithm.algorithmId;
  const algorithm =
    kind === EC_KEY ? { name: "ECDSA", namedCurve: "P-256" } : kind === RSA_KEY ? { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } : null;
  if (!algorithm) throw new Error("the previous key is of a kind this page cannot use");
  const key = await crypto.subtle.importKey("pkcs8", pkcs8, algorithm, false, ["sign"]);
  const serialNumber = leaf.certificate.subject.typesAndValues.find((t) => t.type === "2.5.4.5");
  return { key, algorithm, subscriber: serialNumber ? serialNumber.value.valueBlock.value : null };
}

/** The previous key's signature over the new CSR's DER (SHA-256; ECDSA as DER, as Kinko verifies it), base64. */
export async function proveWithOldKey(old, csrPem) {
  const signing = old.algorithm.name === "ECDSA" ? { name: "ECDSA", hash: "SHA-256" } : old.algorithm;
  let signature = await crypto.subtle.sign(signing, old.key, derOf(csrPem));
  if (old.algorithm.name === "ECDSA") signature = pkijs.createCMSECDSASignature(signature);
  return btoa(String.fromCharCode(...new Uint8Array(signature)));
}

/** A new key pair of the chosen type; extractable, since it goes into the holder's PKCS#12. */
export async function makeKey(keyType) {
  const algorithm = KEYS[keyType];
  if (!algorithm) throw new Error(`unknown key type ${keyType}`);
  return crypto.subtle.generateKey(algorithm, true, ["sign", "verify"]);
}

/** A PKCS#10 request for the key (PEM). Kinko takes the subject from the bank's records, not from here. */
export async function makeCsr(keys) {
  const request = new pkijs.CertificationRequest();
  request.subject.typesAndValues.push(
    new pkijs.AttributeTypeAndValue({ type: "2.5.4.3", value: new asn1js.Utf8String({ value: "kinko-enroll" }) }),
  );
  await request.subjectPublicKeyInfo.importKey(keys.publicKey);
  request.attributes = []; // PKCS#10 requires the (empty) attributes field
  await request.sign(keys.privateKey, "SHA-256");
  return pem("CERTIFICATE REQUEST", request.toSchema().toBER(false));
}

function bagAttributes(friendlyName, localKeyId) {
  const attributes = [];
  if (friendlyName) {
    attributes.push(new pkijs.Attribute({ type: "1.2.840.113549.1.9.20", values: [new asn1js.BmpString({ value: friendlyName })] }));
  }
  if (localKeyId) {
    attributes.push(new pkijs.Attribute({ type: "1.2.840.113549.1.9.21", values: [new asn1js.OctetString({ valueHex: localKeyId })] }));
  }
  return attributes;
}

/** The holder's PKCS#12: the key (PBES2, AES-256-CBC, PBKDF2-HMAC-SHA256) and the certificate with
 * its chain (encrypted the same way), under an HMAC-SHA256 MAC. Returns the DER bytes. */
export async function makePkcs12(keys, certificatePem, chainPems, password, friendlyName) {
  const secret = new TextEncoder().encode(password).buffer;
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  const certificateDer = derOf(certificatePem);
  const localKeyId = await crypto.subtle.digest("SHA-256", certificateDer);
  const keyBag = new pkijs.PKCS8ShroudedKeyBag({ parsedValue: pkijs.PrivateKeyInfo.fromBER(pkcs8) });
  const encryption = { password: secret, contentEncryptionAlgorithm: AES, hmacHashAlgorithm: "SHA-256", iterationCount: ITERATIONS };
  await keyBag.makeInternalValues(encryption);
  const certificateBag = (der, attributes) =>
    new pkijs.SafeBag({
      bagId: "1.2.840.113549.1.12.10.1.3",
      bagValue: new pkijs.CertBag({ parsedValue: pkijs.Certificate.fromBER(der) }),
      bagAttributes: attributes,
    });
  const certificates = new pkijs.SafeContents({
    safeBags: [
      certificateBag(certificateDer, bagAttributes(friendlyName, localKeyId)),
      ...chainPems.map((chainPem) => certificateBag(derOf(chainPem), undefined)),
    ],
  });
  const key = new pkijs.SafeContents({
    safeBags: [
      new pkijs.SafeBag({ bagId: "1.2.840.113549.1.12.10.1.2", bagValue: keyBag, bagAttributes: bagAttributes(friendlyName, localKeyId) }),
    ],
  });
  const pfx = new pkijs.PFX({
    parsedValue: {
      integrityMode: 0, // password MAC
      authenticatedSafe: new pkijs.AuthenticatedSafe({
        parsedValue: { safeContents: [{ privacyMode: 0, value: key }, { privacyMode: 1, value: certificates }] },
      }),
    },
  });
  await pfx.parsedValue.authenticatedSafe.makeInternalValues({ safeContents: [{}, encryption] });
  await pfx.makeInternalValues({ password: secret, iterations: ITERATIONS, pbkdf2HashAlgorithm: "SHA-256", hmacHashAlgorithm: "SHA-256" });
  return pfx.toSchema().toBER(false);
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  const answer = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, answer };
}

function show(element, text, kind) {
  element.textContent = text;
  element.className = kind;
  element.hidden = !text;
  if (text && element.scrollIntoView) element.scrollIntoView({ block: "nearest" }); // below the fold on a small screen
}

/** Checks the password fields; the refusal to show, or "" when they will do. */
function checkPassword(text, form) {
  if (form.password.value.length < 8) return text.short;
  if (form.password.value !== form.confirm.value) return text.mismatch;
  return "";
}

/** Makes a key, sends its CSR with `fields` (an object, or a function of the CSR) to `path`, and
 * offers the PKCS#12 of the answer. */
async function obtain(text, form, path, fields, doneText) {
  const message = document.getElementById("message");
  const result = document.getElementById("result");
  const password = form.password.value;
  form.submit.disabled = true;
  result.hidden = true;
  show(message, text.working, "working");
  try {
    const keys = await makeKey(form.keyType.value);
    const csr = await makeCsr(keys);
    const extra = typeof fields === "function" ? await fields(csr) : fields;
    const { ok, status, answer } = await post(path, { ...extra, csr });
    if (!ok) return show(message, refusal(text, status, answer.detail), "error");
    const p12 = await makePkcs12(keys, answer.pem, answer.chain || [], password, `Kinko ${answer.subscriber || answer.serial}`);
    const link = document.getElementById("download");
    link.href = URL.createObjectURL(new Blob([p12], { type: "application/x-pkcs12" }));
    link.download = `kinko-${answer.serial}.p12`;
    document.getElementById("serial").textContent = answer.serial;
    document.getElementById("notAfter").textContent = shownTime(answer.not_after);
    show(message, doneText, "ok");
    result.hidden = false;
    result.scrollIntoView({ block: "nearest" });
    form.reset();
  } catch (error) {
    show(message, `${text.failed}（${error && error.message ? error.message : error}）`, "error");
  } finally {
    form.submit.disabled = false;
  }
}

function startReacquire(text, form) {
  const message = document.getElementById("message");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.oldFile.files[0];
    const refused = file ? checkPassword(text, form) : text.noFile;
    if (refused) return show(message, refused, "error");
    if (form.submit.disabled) return; // already opening the previous file: one request per press
    form.submit.disabled = true;
    let old;
    try {
      old = await openPkcs12(await file.arrayBuffer(), form.oldPassword.value);
    } catch {
      old = null;
    }
    if (!old || !old.subscriber) {
      form.submit.disabled = false;
      return show(message, text.badFile, "error");
    }
    obtain(text, form, "/v1/reacquire", async (csr) => ({ subscriber: old.subscriber, signature: await proveWithOldKey(old, csr) }), text.reacquired);
  });
}

function startAcquire(text, form) {
  const message = document.getElementById("message");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (form.submit.disabled) return; // a request is under way
    const code = form.code.value.trim();
    const refused = code ? checkPassword(text, form) : text.noCode;
    if (refused) return show(message, refused, "error");
    obtain(text, form, "/v1/acquire", { code }, text.done);
  });
}

/** The logged-in page: the state of the certificate the holder logged in with, and renewal in its window. */
async function startLogin(text) {
  const form = document.getElementById("renew");
  const message = document.getElementById("message");
  const response = await fetch("/login/status", { credentials: "same-origin" });
  const status = await response.json().catch(() => ({}));
  if (!response.ok) return show(message, refusal(text, response.status, status.detail), "error");
  const describe = text.states[status.state] || text.states.other;
  const state = document.getElementById("state");
  state.textContent = describe(status);
  state.dataset.state = status.state;
  document.getElementById("serial").textContent = status.serial || "";
  document.getElementById("notAfter").textContent = status.not_after ? shownTime(status.not_after) : "";
  form.hidden = status.state !== "renewal-open";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (form.submit.disabled) return; // a request is under way
    const refused = checkPassword(text, form);
    if (refused) return show(message, refused, "error");
    obtain(text, form, "/v1/renew", {}, text.renewed);
  });
}

function start() {
  const text = TEXT[language(navigator.languages)];
  document.documentElement.lang = language(navigator.languages);
  for (const element of document.querySelectorAll("[data-text]")) element.textContent = text[element.dataset.text];
  const login = document.getElementById("login");
  document.title = login ? text.loginTitle : text.title;
  if (!window.crypto || !crypto.subtle) {
    show(document.getElementById("message"), text.unsupported, "error");
    for (const form of document.querySelectorAll("form")) form.hidden = true;
    return;
  }
  if (login) startLogin(text);
  else {
    startAcquire(text, document.getElementById("acquire"));
    startReacquire(text, document.getElementById("reacquire"));
  }
}

if (typeof document !== "undefined") {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
}
