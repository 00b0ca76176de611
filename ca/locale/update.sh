#!/bin/sh
# The catalogue workflow: extract every text for people into ca/locale/kinko.pot, merge it into each
# language's .po (new texts arrive untranslated, changed ones fuzzy: tests/unit/test_catalogue.py
# fails until a translator fills them in), and compile the .mo files the package ships.
#   sh ca/locale/update.sh           # after adding or changing a message
#   sh ca/locale/update.sh --check   # CI: the committed .pot is what the sources make (the .po and .mo
#                                    # are checked by tests/unit/test_catalogue.py)
#   sh ca/locale/update.sh --todo    # also lists the messages still written as f-strings
set -eu
cd "$(dirname "$0")/../.."
pybabel=.venv/bin/pybabel
# The help texts are read from this tree's command registry, whatever copy of Kinko the venv installed.
shadow=$(mktemp -d)
trap 'rm -rf "$shadow"' EXIT
ln -s "$PWD" "$shadow/kinko"
export PYTHONPATH="$shadow${PYTHONPATH:+:$PYTHONPATH}"
# Keywords: gettext's markers, said() (a sentence for people), Phrase (one said later), and each error class, whose first argument is a message template.
keywords="-k _ -k N_ -k said -k Phrase"
for kind in KinkoError InputError PolicyError NotFound Conflict ConfigError PassphraseError StorageError \
    Forbidden SchemaVersionError IntegrityError LedgerBroken ServiceUnavailable ProtocolError; do
    keywords="$keywords -k $kind"
done
out=ca/locale/kinko.pot
[ "${1:-}" = "--check" ] && out=$(mktemp)
# An f-string message is not extracted: it stays English until it becomes a template (`Kind("... {x}",
# x=...)`). Babel names each one; `--todo` lists them, otherwise only their number is said.
said=$(mktemp)
# shellcheck disable=SC2086
$pybabel -q extract -F ca/locale/babel.cfg $keywords --no-location --sort-output --omit-header \
    --no-wrap -o "$out" ca ocsp crl cli.py 2>"$said" || { cat "$said" >&2; rm -f "$said"; exit 1; }
if [ "${1:-}" = "--todo" ]; then
    grep "Skipping f-string" "$said" | sed 's/: warning: Skipping f-string.*//' >&2
elif [ "${1:-}" != "--check" ]; then
    echo "$(grep -c "Skipping f-string" "$said") messages are still f-strings, in English only (--todo lists them)" >&2
fi
grep -v "Skipping f-string" "$said" >&2 || true
rm -f "$said"
if [ "${1:-}" = "--check" ]; then
    cmp -s "$out" ca/locale/kinko.pot || { echo "ca/locale/kinko.pot is stale: run sh ca/locale/update.sh" >&2; exit 1; }
    rm -f "$out"
    exit 0
fi
for language in ja; do
    po=ca/locale/$language/LC_MESSAGES/kinko.po
    if [ -f "$po" ]; then
        $pybabel -q update -D kinko -i "$out" -d ca/locale -l "$language" --no-wrap --ignore-obsolete \
            --no-fuzzy-matching
    else
        $pybabel -q init -D kinko -i "$out" -d ca/locale -l "$language" --no-wrap
    fi
done
$pybabel -q compile -D kinko -d ca/locale --statistics
