"""The holder's enrollment page in a real Chromium, through a real nginx, against `kinko api serve`.

nginx runs the shipped config/nginx/kinko-frontend.conf (TLS with the test's own throwaway server
CA, trusted in the browser's NSS database; client certificates checked by OCSP against a real
`kinko ocsp serve`): it passes /enroll/ to the API and adds the bearer token to /v1/acquire and
/v1/renew, so the page never sees it, and here it also logs every request body that reaches the
API, so the test can show that no private key went there. Chromium (Debian's, driven by
Selenium through Debian's chromedriver) makes the key, the CSR and the PKCS#12 in the page; the
journey then imports the file into Chromium's NSS database (pk12util), with a managed policy
that selects it for the site, logs in with it, renews it and is refused once it is revoked.
Screenshots of each step go to test-artifacts/browser/.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from kinko.ca.authorities import chain_pem
from kinko.ca.clock import FixedClock, SystemClock
from kinko.ca.config import set_value
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ca.officers import current_login
from tests.conftest import ORG, ROOT, RunningResponder, free_port, make_csr, make_key, row_counts
from tests.integration.test_api import TOKEN, serving
from tests.interop.test_nginx_login import Nginx, ServerTLS, make_server_tls
from tests.interop.tools import tool

PASSWORD = "correct-horse-8"
JA_PASSWORD = "証明書のパスワード8"  # not ASCII: the PKCS#12 MAC's key is made from its BMPString
ARTIFACTS = ROOT / "test-artifacts" / "browser"
WAIT = 90  # seconds the page may take: key, CSR, the API, and 3 x 100k PBKDF2/KDF rounds in JS
EXPIRED_HOLDERS = {"ec-p256": "C0001-OLD", "rsa-2048": "C0001-OLDR"}  # each with old-<key type>.p12
WRONG_CODE_JA = "登録コードが正しくないか、使用済みまたは有効期限切れです"

SHIPPED = ROOT / "config" / "nginx" / "kinko-frontend.conf"
MAIN_CONF = """\
{user}worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    log_format bodies escape=json '$request_method $uri $request_body';
    include {dir}/kinko-frontend.conf;
}}
"""


@dataclass
class Site:
    home: Home
    kinko: Kinko
    url: str
    bodies_log: Path
    base: Path
    api_port: int
    restart_api: Any  # (renewal_days) -> None: the API again, on its port, under that [lifecycle] window
    nginx: Nginx


def render_shipped(
    directory: Path, ports: tuple[int, int], api_port: int, responder_url: str, tls: ServerTLS, client_ca: Path
) -> str:
    """config/nginx/kinko-frontend.conf with this test's ports (enrollment site, login site) and
    files, and every request body logged."""
    token_conf = directory / "kinko-api-token.conf"
    token_conf.write_text(f'proxy_set_header Authorization "Bearer {TOKEN}";\n', encoding="utf-8")
    token_conf.chmod(0o600)
    shipped = SHIPPED.read_text(encoding="utf-8")
    assert shipped.count("listen 443 ssl;") == 2, "the shipped config no longer has its two sites"
    for port in ports:  # the enrollment site first, then the login site
        shipped = shipped.replace("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;", 1)
    bodies = f"access_log {directory}/bodies.log bodies;"
    replacements = {
        "server_name enroll.bank.example;": f"server_name enroll.bank.example;\n    {bodies}",
        "server_name login.bank.example;": f"server_name login.bank.example;\n    {bodies}",
        "server 127.0.0.1:8082;": f"server 127.0.0.1:{api_port};",
        "http://127.0.0.1:8081/": responder_url,
        "/etc/kinko/frontend/server.pem": str(tls.cert_file),
        "/etc/kinko/frontend/server.key": str(tls.key_file),
        "/etc/kinko/frontend/client-ca.pem": str(client_ca),
        "/etc/nginx/kinko-api-token.conf": str(token_conf),
    }
    for old, new in replacements.items():
        assert old in shipped, f"the shipped config no longer has {old!r}"
        shipped = shipped.replace(old, new)
    return shipped


class FrontEndNginx(Nginx):
    """The test_nginx_login nginx, running the shipped front-end configuration: the enrollment
    site at `url`, the login site at `login_url`."""

    def __init__(self, directory: Path, api_port: int, responder_url: str, client_ca: Path) -> None:
        tls = make_server_tls(directory / "tls")
        super().__init__(directory, tls, client_ca, responder_url)
        self.login_port = free_port()
        self.login_url = f"https://127.0.0.1:{self.login_port}/"
        ports = (self.port, self.login_port)
        rendered = render_shipped(directory, ports, api_port, responder_url, tls, client_ca)
        (directory / "kinko-frontend.conf").write_text(rendered, encoding="utf-8")
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.conf.write_text(MAIN_CONF.format(user=user, dir=directory), encoding="utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("enroll")
    passphrase = base / "pass.txt"
    passphrase.write_text("browser test passphrase\n")
    passphrase.chmod(0o600)
    # The CA is 400 days old, so that one holder's certificate has expired by today (in the grace
    # period): issued 370 days ago in the CA's own history, then the CA runs on the real clock.
    past = FixedClock(SystemClock().now() - dt.timedelta(days=400))
    home = create_home(base / "home", InitOptions(organization=ORG, passphrase_file=passphrase), past, "root")
    earlier = Kinko(home, clock=past, actor=current_login())
    earlier.add_customer("C0001", "株式会社テスト")
    past.advance(days=30)
    # The files the holders' browsers made a year ago (the same protection as this page's).
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(100_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(PASSWORD.encode())
    )
    for key_type, holder in EXPIRED_HOLDERS.items():
        enrolled = earlier.enroll_administrator("C0001", "高橋 健", holder)
        old_key = make_key() if key_type == "ec-p256" else rsa.generate_private_key(65537, 2048)
        old = earlier.acquire(enrolled.code, make_csr(old_key))
        certificate = x509.load_pem_x509_certificate(old.pem.encode("ascii"))
        (base / f"old-{key_type}.p12").write_bytes(
            pkcs12.serialize_key_and_certificates(f"Kinko {holder}".encode(), old_key, certificate, None, encryption)
        )
    kinko = Kinko(home, clock=SystemClock(), actor=current_login())
    kinko.rotate_ocsp_signers()  # the signers made 400 days ago are long past their 30 days
    client_ca = base / "client-ca.pem"
    client_ca.write_text(chain_pem(home), encoding="ascii")
    responder = RunningResponder(home)
    api_port = free_port()
    with contextlib.ExitStack() as stack:
        stack.callback(responder.stop)
        api = stack.enter_context(contextlib.ExitStack())
        api.enter_context(serving(home, base, port=api_port))

        def restart_api(renewal_days: int) -> None:
            api.close()
            text = set_value(home.config_file.read_text(encoding="utf-8"), "renewal_days", renewal_days)
            home.config_file.write_text(text, encoding="utf-8")
            api.enter_context(serving(home, base, port=api_port))

        nginx = FrontEndNginx(base / "nginx", api_port, responder.url, client_ca)
        nginx.start()
        stack.callback(nginx.stop)
        yield Site(home, kinko, nginx.url, base / "nginx" / "bodies.log", base, api_port, restart_api, nginx)


POLICY_DIR = Path("/etc/chromium/policies/managed")


def nss_profile(directory: Path, server_ca: Path) -> Path:
    """A HOME whose NSS database (Chromium's on Linux) trusts the front end's TLS server CA only."""
    nssdb = directory / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    certutil = tool("certutil")
    subprocess.run([certutil, "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True, timeout=30)
    subprocess.run(
        [certutil, "-A", "-d", f"sql:{nssdb}", "-n", "front end CA", "-t", "C,,", "-i", str(server_ca)],
        check=True,
        timeout=30,
    )
    return directory


@contextlib.contextmanager
def chromium(home: Path, downloads: Path, languages: str = "ja,en-US") -> Iterator[Any]:
    """A headless Chromium whose HOME (so NSS database) is `home`, saving downloads in `downloads`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = tool("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=900,1000"):
        options.add_argument(flag)
    options.add_argument(f"--lang={languages.split(',')[0]}")
    options.add_argument(f"--user-data-dir={home / 'chromium'}")
    options.add_experimental_option("prefs", {"intl.accept_languages": languages})
    # Debian's chromedriver, named explicitly: otherwise Selenium Manager looks for one on the network.
    service = Service(tool("chromedriver"), env={**os.environ, "HOME": str(home)})
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        driver.downloads = downloads
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def browser(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    profile = nss_profile(tmp_path_factory.mktemp("chromium-home"), site.bodies_log.parent / "tls" / "server-ca.pem")
    with chromium(profile, tmp_path_factory.mktemp("downloads")) as driver:
        yield driver


@contextlib.contextmanager
def auto_select_policy(*site_urls: str) -> Iterator[None]:
    """Chromium's managed policy that presents a client certificate to the site without asking, as
    a bank's managed PCs would (or the holder picks it once): headless Chromium cannot be asked."""
    POLICY_DIR.mkdir(parents=True, exist_ok=True)
    policy = POLICY_DIR / "kinko-test-auto-select.json"
    patterns = [json.dumps({"pattern": url.rstrip("/"), "filter": {}}) for url in site_urls]
    policy.write_text(json.dumps({"AutoSelectCertificateForUrls": patterns}), encoding="utf-8")
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)


def screenshot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def fill_and_submit(driver: Any, url: str, code: str, key_type: str, password: str = PASSWORD) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.get(url + "enroll/")
    driver.find_element(By.ID, "code").send_keys(code)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "confirm").send_keys(password)
    Select(driver.find_element(By.ID, "keyType")).select_by_value(key_type)
    driver.find_element(By.ID, "submit").click()


def wait_for_download(directory: Path, before: set[str]) -> Path:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        done = [p for p in directory.glob("*.p12") if p.name not in before]
        if done and not list(directory.glob("*.crdownload")):
            return done[0]
        time.sleep(0.1)
    pytest.fail(f"no .p12 arrived in {directory} within {WAIT} s")


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048"])
def test_a_holder_gets_a_pkcs12_made_in_the_browser(site: Site, browser: Any, key_type: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    enrolled = site.kinko.enroll_administrator("C0001", "山田 太郎", f"C0001-{key_type}")
    browser.get(site.url + "enroll/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "電子証明書の取得"
    screenshot(browser, f"{key_type}-1-page")
    password = PASSWORD if key_type == "ec-p256" else JA_PASSWORD
    before = {p.name for p in browser.downloads.glob("*.p12")}
    fill_and_submit(browser, site.url, enrolled.code, key_type, password)
    WebDriverWait(browser, WAIT).until(expected_conditions.visibility_of_element_located((By.ID, "result")))
    screenshot(browser, f"{key_type}-2-acquired")
    serial = browser.find_element(By.ID, "serial").text
    browser.find_element(By.ID, "download").click()
    p12 = wait_for_download(browser.downloads, before)
    assert p12.name == f"kinko-{serial}.p12"

    # The file opens with the holder's password only, and its key is the certificate's.
    data = p12.read_bytes()
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(data, b"wrong password")
    bundle = pkcs12.load_pkcs12(data, password.encode())
    assert bundle.key is not None and bundle.cert is not None
    certificate = bundle.cert.certificate
    assert format(certificate.serial_number, "X").zfill(len(serial)) == serial
    assert bundle.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert bundle.cert.friendly_name == f"Kinko C0001-{key_type}".encode()
    chain = [extra.certificate for extra in bundle.additional_certs]
    assert [c.subject for c in chain] == [site.home.ca_certificate(r).subject for r in ("issuing", "root")]
    expected_key = "EC" if key_type == "ec-p256" else "RSA"
    assert expected_key in type(bundle.key).__name__.upper()
    registry = site.home.store.certificate(serial)
    assert registry is not None and registry.subscriber_id == f"C0001-{key_type}"

    # openssl reads it too, and says how it is protected: AES-256-CBC under PBKDF2-HMAC-SHA256, 100k rounds.
    openssl = tool("openssl")
    info = subprocess.run(
        [openssl, "pkcs12", "-info", "-in", str(p12), "-passin", f"pass:{password}", "-noout"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stderr
    assert "MAC: sha256, Iteration 100000" in info
    assert info.count("PBES2, PBKDF2, AES-256-CBC, Iteration 100000, PRF hmacWithSHA256") == 2, info
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    issuing, root = (tmp_path / "issuing.pem", tmp_path / "root.pem")
    issuing.write_bytes(chain[0].public_bytes(serialization.Encoding.PEM))
    root.write_bytes(chain[1].public_bytes(serialization.Encoding.PEM))
    verified = subprocess.run(
        [openssl, "verify", "-CAfile", str(root), "-untrusted", str(issuing), str(leaf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert verified.returncode == 0 and verified.stdout.strip() == f"{leaf}: OK", verified.stdout + verified.stderr

    # What reached the API for this acquisition was the code and a CSR for the certificate's key:
    # nothing else, and nothing of the private key anywhere in what nginx passed on.
    (sent,) = [body for path, body in bodies(site) if path == "/v1/acquire" and body.get("code") == enrolled.code]
    assert set(sent) == {"code", "csr"}
    request = x509.load_pem_x509_csr(sent["csr"].encode("ascii"))
    assert request.public_key() == certificate.public_key()
    assert_no_key_in_log(site, bundle.key)


def bodies(site: Site) -> list[tuple[str, dict[str, Any]]]:
    """Every JSON request body nginx passed to the API, with its path (the test's access log)."""
    found = []
    for line in site.bodies_log.read_text(encoding="utf-8").splitlines():
        method, path, escaped = [*line.split(" ", 2), ""][:3]
        if method == "POST" and escaped:
            found.append((path, json.loads(json.loads(f'"{escaped}"'))))
    return found


def assert_no_key_in_log(site: Site, key: Any) -> None:
    """No form of the private key (PEM, PKCS#8 DER in base64, its secret number in hex or base64) was logged."""
    logged = site.bodies_log.read_text(encoding="utf-8").replace("\\n", "")
    numbers = key.private_numbers()
    secret = numbers.private_value if hasattr(numbers, "private_value") else numbers.d
    secret_bytes = secret.to_bytes((secret.bit_length() + 7) // 8, "big")
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert "PRIVATE KEY" not in logged
    for form in (
        base64.b64encode(pkcs8).decode()[:64],
        secret_bytes.hex(),
        base64.b64encode(secret_bytes).decode()[:40],
    ):
        assert form.lower() not in logged.lower()
    assert TOKEN not in logged


def test_a_wrong_code_is_refused_in_japanese_and_issues_nothing(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    before = row_counts(site.home)["certificates"]
    fill_and_submit(browser, site.url, "ABCD-EFGH-JKMN-PQRS-TVWX-YZ01-2345", "ec-p256")
    message = WebDriverWait(browser, WAIT).until(
        lambda driver: (
            driver.find_element(By.ID, "message").text
            if "error" in (driver.find_element(By.ID, "message").get_attribute("class") or "")
            else None
        )
    )
    screenshot(browser, "wrong-code")
    assert WRONG_CODE_JA in message
    assert not browser.find_element(By.ID, "result").is_displayed()
    assert row_counts(site.home)["certificates"] == before


def test_the_page_carries_a_strict_content_security_policy(site: Site) -> None:
    import ssl
    import urllib.request

    context = ssl.create_default_context(cafile=str(site.bodies_log.parent / "tls" / "server-ca.pem"))
    with urllib.request.urlopen(site.url + "enroll/", context=context, timeout=10) as response:  # noqa: S310
        policy = response.headers["Content-Security-Policy"]
        body = response.read().decode("utf-8")
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert '<script src="enroll.js"' in body and "<script>" not in body  # no inline script the CSP would block


def wait_for_state(driver: Any) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    found: str = WebDriverWait(driver, WAIT).until(
        lambda d: d.find_element(By.ID, "state").get_attribute("data-state") or None
    )
    return found


def import_p12(profile: Path, p12: Path, remove: str | None = None) -> None:
    """pk12util into the profile's NSS database, as the holder imports the downloaded file."""
    nssdb = f"sql:{profile / '.pki' / 'nssdb'}"
    if remove is not None:  # the superseded certificate, as the holder would delete it
        subprocess.run([tool("certutil"), "-D", "-d", nssdb, "-n", remove], check=True, timeout=30)
    password = profile / "p12-password"
    password.write_text(PASSWORD, encoding="utf-8")
    subprocess.run(
        [tool("pk12util"), "-i", str(p12), "-d", nssdb, "-w", str(password)],
        check=True,
        timeout=60,
        capture_output=True,
    )


def test_a_holder_logs_in_with_it_renews_it_and_is_refused_once_revoked(site: Site, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    holder = "C0001-J"
    enrolled = site.kinko.enroll_administrator("C0001", "佐藤 花子", holder)
    profile = nss_profile(tmp_path / "home", site.bodies_log.parent / "tls" / "server-ca.pem")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    login = site.nginx.login_url
    # Both sites would be sent the certificate if they asked: only the login site asks.
    with auto_select_policy(site.url, login):
        with chromium(profile, downloads) as driver:
            fill_and_submit(driver, site.url, enrolled.code, "ec-p256")
            WebDriverWait(driver, WAIT).until(expected_conditions.visibility_of_element_located((By.ID, "result")))
            first = driver.find_element(By.ID, "serial").text
            driver.find_element(By.ID, "download").click()
            p12 = wait_for_download(downloads, set())
        import_p12(profile, p12)

        # A fresh browser (a full TLS handshake: nginx asks Kinko's responder) logs in with it.
        with chromium(profile, downloads) as driver:
            driver.get(login + "login/")
            assert wait_for_state(driver) == "valid"
            assert driver.find_element(By.ID, "serial").text == first
            assert not driver.find_element(By.ID, "renew").is_displayed()  # no button outside the window
            screenshot(driver, "journey-1-logged-in")

        # With the renewal window open (the bank's window widened to cover today), the button
        # appears, and renewing in the browser gives a new file and supersedes the old certificate.
        site.restart_api(366)
        try:
            with chromium(profile, downloads) as driver:
                driver.get(login + "login/")
                assert wait_for_state(driver) == "renewal-open"
                form = driver.find_element(By.ID, "renew")
                assert form.is_displayed() and driver.find_element(By.ID, "submit").text == "証明書更新"
                screenshot(driver, "journey-2-renewal-open")
                driver.find_element(By.ID, "password").send_keys(PASSWORD)
                driver.find_element(By.ID, "confirm").send_keys(PASSWORD)
                before = {p.name for p in downloads.glob("*.p12")}
                driver.find_element(By.ID, "submit").click()
                WebDriverWait(driver, WAIT).until(expected_conditions.visibility_of_element_located((By.ID, "result")))
                second = driver.find_element(By.ID, "serial").text
                driver.find_element(By.ID, "download").click()
                renewed = wait_for_download(downloads, before)
                screenshot(driver, "journey-3-renewed")
        finally:
            site.restart_api(30)
        assert second != first and renewed.name == f"kinko-{second}.p12"
        old, new = site.home.store.certificate(first), site.home.store.certificate(second)
        assert old is not None and old.status == "revoked" and old.revocation_reason == "superseded"
        assert new is not None and new.status == "valid" and new.subscriber_id == holder
        import_p12(profile, renewed, remove=f"Kinko {holder}")

        with chromium(profile, downloads) as driver:
            driver.get(login + "login/")
            assert wait_for_state(driver) == "valid"
            assert driver.find_element(By.ID, "serial").text == second

        # Revoked: the next login's handshake gets "revoked" from Kinko's responder, and nginx refuses it.
        site.kinko.revoke(second, "key-compromise")
        time.sleep(0.2)  # the responder's workers notice a commit within 50 ms (README)
        offset = site.nginx.log_size()
        with chromium(profile, downloads) as driver:
            driver.get(login + "login/")
            heading = WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.TAG_NAME, "h1").text or None)
            screenshot(driver, "journey-4-revoked")
            assert heading == "ログインできません"
            assert driver.find_elements(By.ID, "state") == []
            # The enrollment site asks for no certificate: the holder still reaches the page for a new one.
            driver.get(site.url + "enroll/")
            assert driver.find_element(By.TAG_NAME, "h1").text == "電子証明書の取得"
        assert "client SSL certificate verify error: certificate revoked" in site.nginx.log_since(offset)


def test_the_page_speaks_english_to_a_browser_that_prefers_it(site: Site, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    profile = nss_profile(tmp_path / "home", site.bodies_log.parent / "tls" / "server-ca.pem")
    with chromium(profile, tmp_path, languages="en-US,en") as driver:
        driver.get(site.url + "enroll/")
        WebDriverWait(driver, WAIT).until(lambda d: d.title == "Get your client certificate")
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
        assert driver.find_element(By.ID, "submit").text == "Get certificate"
        fill_and_submit(driver, site.url, "ABCD-EFGH-JKMN-PQRS-TVWX-YZ01-2345", "ec-p256")
        message = WebDriverWait(driver, WAIT).until(
            lambda d: (
                d.find_element(By.ID, "message").text if "wrong" in d.find_element(By.ID, "message").text else None
            )
        )
        assert message.startswith("The enrollment code is wrong, already used or expired.")
        screenshot(driver, "english")


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048"])
def test_an_expired_holder_reacquires_with_the_previous_file(site: Site, browser: Any, key_type: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait

    holder = EXPIRED_HOLDERS[key_type]
    assert site.kinko.subscriber_status(holder).status.state == "expired-reacquirable"
    before = {p.name for p in browser.downloads.glob("*.p12")}
    browser.get(site.url + "enroll/")

    def reacquire(password: str) -> None:
        browser.find_element(By.ID, "oldFile").send_keys(str(site.base / f"old-{key_type}.p12"))
        browser.find_element(By.ID, "oldPassword").send_keys(password)
        browser.find_element(By.ID, "newPassword").send_keys(PASSWORD)
        browser.find_element(By.ID, "newConfirm").send_keys(PASSWORD)
        Select(browser.find_element(By.ID, "newKeyType")).select_by_value("ec-p256")
        browser.find_element(By.ID, "reacquireSubmit").click()

    # A wrong password for the previous file: told so, nothing sent.
    reacquire("not-the-password")
    message = WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.ID, "message").text or None)
    assert message.startswith("以前の証明書ファイルを開けません")
    browser.get(site.url + "enroll/")
    reacquire(PASSWORD)
    WebDriverWait(browser, WAIT).until(expected_conditions.visibility_of_element_located((By.ID, "result")))
    screenshot(browser, "reacquired")
    serial = browser.find_element(By.ID, "serial").text
    browser.find_element(By.ID, "download").click()
    p12 = wait_for_download(browser.downloads, before)
    bundle = pkcs12.load_pkcs12(p12.read_bytes(), PASSWORD.encode())
    assert bundle.cert is not None and bundle.key is not None
    record = site.home.store.certificate(serial)
    assert record is not None and record.subscriber_id == holder and record.status == "valid"
    assert site.kinko.subscriber_status(holder).status.state == "valid"
    (sent,) = [body for path, body in bodies(site) if path == "/v1/reacquire" and body["subscriber"] == holder]
    assert set(sent) == {"subscriber", "csr", "signature"}
    assert_no_key_in_log(site, bundle.key)


def front_end(site: Site, url: str, path: str, method: str = "GET", body: Any = None, **kw: Any) -> tuple[int, Any]:
    """One request to a front-end site as a script would send it: (status, response).

    `headers` are sent as given; `client` is a (certificate, key) pair of files for mutual TLS."""
    import http.client
    import ssl
    import urllib.parse

    context = ssl.create_default_context(cafile=str(site.bodies_log.parent / "tls" / "server-ca.pem"))
    if kw.get("client"):
        context.load_cert_chain(*kw["client"])
    address = urllib.parse.urlsplit(url)
    connection = http.client.HTTPSConnection(address.hostname, address.port, context=context, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", **kw.get("headers", {})} if data else kw.get("headers", {})
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        response.body = response.read().decode("utf-8", "replace")
        return response.status, response
    finally:
        connection.close()


def test_the_front_end_refuses_what_its_own_pages_never_send(site: Site) -> None:
    enrolled = site.kinko.enroll_administrator("C0001", "中村 一", "C0001-X")
    body = {"code": enrolled.code, "csr": make_csr(make_key()).decode("ascii")}
    before = row_counts(site.home)["certificates"]
    origin = site.url.rstrip("/")
    # Another site's POST (by the browser's Sec-Fetch-Site, or its Origin) stops at nginx.
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site", "Origin": origin},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": site.nginx.login_url.rstrip("/")},  # the bank's other site: not this page's origin
        {"Origin": origin.rsplit(":", 1)[0] + ":1"},  # the same host on another port
    ):
        status, _ = front_end(site, site.url, "/v1/acquire", "POST", body, headers=headers)
        assert status == 403, headers
    assert front_end(site, site.url, "/v1/acquire", "OPTIONS", headers={"Origin": "https://evil.example"})[0] == 403
    assert row_counts(site.home)["certificates"] == before
    # The same code, from the page's own origin, still works: nothing above used it up.
    headers = {"Origin": origin, "Sec-Fetch-Site": "same-origin"}
    status, response = front_end(site, site.url, "/v1/acquire", "POST", body, headers=headers)
    assert status == 201, response.body
    assert json.loads(response.body)["subscriber"] == "C0001-X"
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"

    # Only the holder's calls are passed on: no officer's, no status by serial, on either site.
    serial = json.loads(response.body)["serial"]
    for url in (site.url, site.nginx.login_url):
        assert front_end(site, url, f"/v1/certificates/{serial}/status")[0] == 404
        assert front_end(site, url, "/v1/enrollments", "POST", {"customer": "C0001", "name": "x"})[0] == 404
        assert front_end(site, url, "/healthz")[0] == 404
    # The login site's calls are not on the enrollment site, and the other way round.
    assert front_end(site, site.url, "/v1/renew", "POST", {"csr": body["csr"]})[0] == 404
    assert front_end(site, site.nginx.login_url, "/v1/acquire", "POST", body)[0] == 404
    # Renewal without a verified certificate: a certificate named in a header of the request is not one.
    forged = {"X-Client-Certificate": "-----BEGIN%20CERTIFICATE-----", "Origin": site.nginx.login_url.rstrip("/")}
    assert front_end(site, site.nginx.login_url, "/v1/renew", "POST", {"csr": body["csr"]}, headers=forged)[0] == 403
    assert row_counts(site.home)["certificates"] == before + 1
    # HSTS on every answer of both sites, refusals included.
    for url, path in ((site.url, "/nothing"), (site.nginx.login_url, "/login/"), (site.nginx.login_url, "/x")):
        status, response = front_end(site, url, path)
        assert status in (403, 404) and response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_a_verified_holder_cannot_name_another_certificate_in_a_header(site: Site, tmp_path: Path) -> None:
    """nginx replaces X-Client-Certificate with the certificate it verified: a renewal names that one."""
    import urllib.parse

    from tests.interop.test_nginx_login import issue_client

    holder, other = issue_client(site.kinko, tmp_path, "holder"), issue_client(site.kinko, tmp_path, "other")
    forged = {
        "X-Client-Certificate": urllib.parse.quote(other.cert_file.read_text(encoding="ascii")),
        "Origin": site.nginx.login_url.rstrip("/"),
    }
    body = {"csr": make_csr(make_key()).decode("ascii")}
    pair = (str(holder.cert_file), str(holder.key_file))
    status, response = front_end(site, site.nginx.login_url, "/v1/renew", "POST", body, headers=forged, client=pair)
    # Both were just issued: the renewal window is closed, and the refusal names the verified one.
    assert 400 <= status < 500 and holder.serial in response.body and other.serial not in response.body, response.body


def test_a_refused_certificate_gets_the_refusal_page_for_a_renewal_post_too(site: Site, tmp_path: Path) -> None:
    from tests.interop.test_nginx_login import issue_client

    client = issue_client(site.kinko, tmp_path, "refused")
    site.kinko.revoke(client.serial, "key-compromise")
    time.sleep(0.2)  # the responder's workers notice a commit within 50 ms (README)
    pair = (str(client.cert_file), str(client.key_file))
    for method, path in (("GET", "/login/"), ("POST", "/v1/renew")):
        body = {"csr": make_csr(make_key()).decode("ascii")} if method == "POST" else None
        status, response = front_end(site, site.nginx.login_url, path, method, body, client=pair)
        assert status == 403 and "<h1>ログインできません</h1>" in response.body, (method, status, response.body)
    # The enrollment site never asks for a certificate, so it is not refused there.
    status, response = front_end(site, site.url, "/enroll/", client=pair)
    assert status == 200 and "電子証明書の取得" in response.body


def test_a_locked_out_browser_is_told_so_in_japanese(site: Site, browser: Any) -> None:
    """Last in this module: it locks out 127.0.0.1, the address nginx forwards for every test here."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    enrolled = site.kinko.enroll_administrator("C0001", "鈴木 一郎", "C0001-L")
    last = enrolled.code[-1]
    wrong = enrolled.code[:-1] + ("X" if last != "X" else "Y")  # the holder's lookup, a wrong secret

    def attempt(code: str) -> str:
        fill_and_submit(browser, site.url, code, "ec-p256")
        shown: str = WebDriverWait(browser, WAIT).until(
            lambda d: (
                d.find_element(By.ID, "message").text
                if "error" in (d.find_element(By.ID, "message").get_attribute("class") or "")
                else None
            )
        )
        return shown

    for _ in range(5):
        assert WRONG_CODE_JA in attempt(wrong)
    # Locked: even the right code gets the lockout message, and nothing is issued.
    before = row_counts(site.home)["certificates"]
    assert "登録コードの誤りが続いたため、しばらく受け付けできません" in attempt(enrolled.code)
    screenshot(browser, "locked")
    assert row_counts(site.home)["certificates"] == before
    site.kinko.clear_code_lock("api:127.0.0.1")
