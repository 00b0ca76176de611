"""The holder's enrollment page in a real Chromium, through a real nginx, against `kinko api serve`.

nginx serves TLS (the test's own throwaway server CA, trusted in the browser's NSS database),
passes /enroll/ to the API and adds the bearer token to /v1/acquire, so the page never sees it;
it also logs every request body that reaches the API, so the test can show that no private key
went there. Chromium (Debian's, driven by Selenium through Debian's chromedriver) makes the key,
the CSR and the PKCS#12 in the page. Screenshots of each step go to test-artifacts/browser/.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from kinko.ca.clock import SystemClock
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ca.officers import current_login
from tests.conftest import ORG, ROOT, row_counts
from tests.integration.test_api import TOKEN, serving
from tests.interop.test_nginx_login import Nginx, make_server_tls
from tests.interop.tools import tool

PASSWORD = "correct-horse-8"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
WAIT = 90  # seconds the page may take: key, CSR, the API, and 3 x 100k PBKDF2/KDF rounds in JS
WRONG_CODE_JA = "登録コードが正しくないか、使用済みまたは有効期限切れです"

NGINX_ENROLL_CONF = """\
{user}worker_processes 1;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    log_format bodies escape=json '$request_method $uri $request_body';
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {server_cert};
        ssl_certificate_key {server_key};
        client_body_buffer_size 64k;
        client_max_body_size 64k;
        location /enroll/ {{
            proxy_pass http://127.0.0.1:{api_port};
        }}
        location = /v1/acquire {{
            access_log {dir}/bodies.log bodies;
            proxy_set_header Authorization "Bearer {token}";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_pass http://127.0.0.1:{api_port};
        }}
        location / {{ return 404; }}
    }}
}}
"""


@dataclass
class Site:
    home: Home
    kinko: Kinko
    url: str
    bodies_log: Path


class EnrollNginx(Nginx):
    """The test_nginx_login nginx, with the enrollment site's configuration."""

    def __init__(self, directory: Path, api_port: int) -> None:
        server = make_server_tls(directory / "tls")
        super().__init__(directory, server, server.ca_file, "http://127.0.0.1:1/")
        self.conf.write_text(
            NGINX_ENROLL_CONF.format(
                user="user root;\n" if os.geteuid() == 0 else "",
                dir=directory,
                port=self.port,
                server_cert=server.cert_file,
                server_key=server.key_file,
                api_port=api_port,
                token=TOKEN,
            ),
            encoding="utf-8",
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("enroll")
    passphrase = base / "pass.txt"
    passphrase.write_text("browser test passphrase\n")
    passphrase.chmod(0o600)
    home = create_home(base / "home", InitOptions(organization=ORG, passphrase_file=passphrase), SystemClock(), "root")
    kinko = Kinko(home, clock=SystemClock(), actor=current_login())
    kinko.add_customer("C0001", "株式会社テスト")
    with serving(home, base) as api_port:
        nginx = EnrollNginx(base / "nginx", api_port)
        nginx.start()
        try:
            yield Site(home, kinko, nginx.url, base / "nginx" / "bodies.log")
        finally:
            nginx.stop()


@pytest.fixture(scope="module")
def browser(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("chromium-home")
    nssdb = profile / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    certutil = tool("certutil")
    subprocess.run([certutil, "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True, timeout=30)
    ca_file = site.bodies_log.parent / "tls" / "server-ca.pem"
    # The front end's TLS server CA, trusted for servers in this profile only: no certificate warning.
    subprocess.run(
        [certutil, "-A", "-d", f"sql:{nssdb}", "-n", "front end CA", "-t", "C,,", "-i", str(ca_file)],
        check=True,
        timeout=30,
    )
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = tool("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=ja", "--window-size=900,1000"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile / 'chromium'}")
    options.add_experimental_option("prefs", {"intl.accept_languages": "ja,en-US"})
    # Debian's chromedriver, named explicitly: otherwise Selenium Manager looks for one on the network.
    service = Service(tool("chromedriver"), env={**os.environ, "HOME": str(profile)})
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        driver.downloads = downloads
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def fill_and_submit(driver: Any, url: str, code: str, key_type: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.get(url + "enroll/")
    driver.find_element(By.ID, "code").send_keys(code)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "confirm").send_keys(PASSWORD)
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
    before = {p.name for p in browser.downloads.glob("*.p12")}
    fill_and_submit(browser, site.url, enrolled.code, key_type)
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
    bundle = pkcs12.load_pkcs12(data, PASSWORD.encode())
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
        [openssl, "pkcs12", "-info", "-in", str(p12), "-passin", f"pass:{PASSWORD}", "-noout"],
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

    # No request body that reached the API held the private key: only the CSR went there.
    key_der = bundle.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    logged = site.bodies_log.read_text(encoding="utf-8")
    assert "CERTIFICATE REQUEST" in logged and enrolled.code in logged
    assert "PRIVATE KEY" not in logged
    assert base64.b64encode(key_der).decode()[:64] not in logged.replace("\\n", "")
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
