"""The enrollment page's refusal texts (ca/web/src/enroll.js, run by node without its two ASN.1
libraries, which these functions do not use): each API refusal in the holder's own language."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import ROOT
from tests.interop.tools import tool

SOURCE = ROOT / "ca" / "web" / "src" / "enroll.js"
CASES = {
    "opens": "renewal of 0A1B opens at 2027-10-26T10:00:00Z (30 days before it expires)",
    "closed": (
        "certificate 0A1B expired at 2027-11-25T10:00:00Z; renewal is closed, re-acquire it instead (kinko reacquire)"
    ),
    "locked": "too many wrong codes: api:127.0.0.1 may not try codes until 2027-01-01T00:15:00Z",
    "code": "the enrollment code is not valid (wrong, already used or expired)",
    "other": "the CSR's key type or curve is not supported",
}


def refusals(tmp_path: Path) -> dict[str, Any]:
    script = SOURCE.read_text(encoding="utf-8")
    script = script.replace('import * as asn1js from "asn1js";', "const asn1js = {};")
    script = script.replace('import * as pkijs from "pkijs";', "const pkijs = {};")
    script += (
        f"\nconst cases = {json.dumps(CASES)};\n"
        "const out = {};\n"
        "for (const lang of ['ja', 'en']) {\n"
        "  out[lang] = {};\n"
        "  for (const [name, detail] of Object.entries(cases)) out[lang][name] = refusal(TEXT[lang], 403, detail);\n"
        "}\n"
        "out.times = ['2026-12-02T23:30:00Z', '2027-01-01T00:00:00Z', 'not a time'].map(shownTime);\n"
        "console.log(JSON.stringify(out));\n"
    )
    module = tmp_path / "enroll.mjs"
    module.write_text(script, encoding="utf-8")
    done = subprocess.run([tool("node"), str(module)], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_each_refusal_is_told_in_the_holder_s_language(tmp_path: Path) -> None:
    shown = refusals(tmp_path)
    ja, en = shown["ja"], shown["en"]
    # The API's UTC time, shown in the bank's zone with its offset, as Kinko's own output shows it.
    assert ja["opens"] == "現在は更新の受付期間ではありません。受付開始: 2027-10-26 19:00:00 +09:00"
    assert en["opens"] == "Renewal is not open now. It opens at 2027-10-26 19:00:00 +09:00."
    # Expired: not "opens at" a time already past, but where to re-acquire.
    assert "再取得" in ja["closed"] and "2027-11-25" not in ja["closed"]
    assert "re-acquire" in en["closed"] and "opens" not in en["closed"]
    assert ja["locked"].startswith("登録コードの誤りが続いたため") and en["locked"].startswith("Too many wrong codes")
    assert ja["code"].startswith("登録コードが正しくないか") and en["code"].startswith("The enrollment code is wrong")
    assert ja["other"] == "電子証明書を取得できませんでした。（403: the CSR's key type or curve is not supported）"


def test_a_holder_s_time_is_in_the_bank_s_zone_across_the_date_line(tmp_path: Path) -> None:
    # 23:30 UTC is already the next morning in Tokyo; what is not a time is shown as it came.
    assert refusals(tmp_path)["times"] == ["2026-12-03 08:30:00 +09:00", "2027-01-01 09:00:00 +09:00", "not a time"]
