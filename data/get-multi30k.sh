#!/usr/bin/env bash
# get-multi30k.sh - put the text of Multi30k task 1 (github.com/multi30k/dataset,
# data/task1) into DEST, then check every file's line count.
#
# usage: data/get-multi30k.sh [--from DIR] [--force] [DEST]
#
#   DEST        where the files go; default data/multi30k in this repository
#               (git-ignored). A folder inside the repository that git does not
#               ignore is refused unless --force is given.
#   --from DIR  copy from a local folder instead of downloading; the environment
#               variable MULTI30K_DIR does the same. DIR may be laid out like
#               DEST (see below) or be a clone of the dataset repository.
#
# Without a local folder the files are downloaded with curl or wget from
# https://raw.githubusercontent.com/multi30k/dataset/master/data/task1.
#
# DEST then holds, for split in train, val, test_2016_flickr, test_2017_flickr,
# test_2017_mscoco and language in en, de, fr, cs (cs: no 2017 test sets):
#   SPLIT.LANG.gz                    raw sentences, one a line
#   tok/SPLIT.lc.norm.tok.LANG.gz    the official lowercased, tokenised text
#                                    (gzip'd here; upstream keeps it plain)
#   SPLIT.txt                        image file name of each line (when found)
# Files already in DEST with the right line count are kept as they are.
set -euo pipefail

BASE_URL=https://raw.githubusercontent.com/multi30k/dataset/master/data/task1
SPLITS="train:29000 val:1014 test_2016_flickr:1000 test_2017_flickr:1000 test_2017_mscoco:461"

die() { echo "get-multi30k: error: $*" >&2; exit 1; }
say() { echo "get-multi30k: $*" >&2; }
usage() { sed -n '5,15s/^# \{0,1\}//p' "$0"; }

# ------------------------------------------------------------- arguments
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FROM=${MULTI30K_DIR:-}
DEST=
FORCE=0
while [ $# -gt 0 ]; do
    case $1 in
        --from) [ $# -ge 2 ] || die "--from needs a folder"; FROM=$2; shift 2 ;;
        --from=*) FROM=${1#--from=}; shift ;;
        --force) FORCE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) usage >&2; die "unknown option $1" ;;
        *) [ -z "$DEST" ] || die "more than one DEST: $DEST and $1"; DEST=$1; shift ;;
    esac
done
DEST=${DEST:-$ROOT/data/multi30k}
[ -z "$FROM" ] || [ -d "$FROM" ] || die "--from / MULTI30K_DIR: $FROM is not a folder"

# refuse to fill a folder of the repository that git would track
DEST=$(realpath -m -- "$DEST")
case $DEST/ in
    "$ROOT"/*)
        if [ $FORCE = 0 ] && command -v git >/dev/null &&
            git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
            ! git -C "$ROOT" check-ignore -q "$DEST/train.en.gz"; then
            die "$DEST is inside the repository and not git-ignored; use data/multi30k," \
                "a folder outside the repository, or --force"
        fi ;;
esac
mkdir -p "$DEST/tok"

# ---------------------------------------------------------------- helpers
trap 'rm -f "$DEST"/.tmp.$$.* "$DEST"/tok/.tmp.$$.* "$DEST"/tok/.tmp.$$.*.plain' EXIT

# lines FILE: the number of lines (a last line without newline counts), gzip or not
lines() {
    case $1 in
        *.gz) gzip -dc -- "$1" | awk 'END { print NR }' ;;
        *) awk 'END { print NR }' "$1" ;;
    esac
}

# download URL OUT: fetch URL to OUT with curl or wget; fails quietly
download() {
    if command -v curl >/dev/null; then
        curl -fsSL --retry 2 --connect-timeout 20 -o "$2" "$1"
    elif command -v wget >/dev/null; then
        wget -q -T 20 -O "$2" "$1"
    else
        return 1
    fi
}

# first_file CANDIDATE...: the first candidate that is a file
first_file() {
    for f in "$@"; do [ -f "$f" ] && { echo "$f"; return 0; }; done
    return 1
}

# fetch KIND NAME OUT: get one file into OUT (a temporary path), gzip'd when
# OUT ends in .gz. KIND is raw, tok or split; NAME is the upstream file name.
fetch() {
    local kind=$1 name=$2 out=$3 src dir
    case $kind in raw) dir=raw ;; tok) dir=tok ;; split) dir=image_splits ;; esac
    if [ -n "$FROM" ]; then
        case $kind in
            raw) src=$(first_file "$FROM/$name" "$FROM/data/task1/raw/$name") ;;
            tok) src=$(first_file "$FROM/tok/$name.gz" "$FROM/tok/$name" \
                        "$FROM/data/task1/tok/$name" "$FROM/data/task1/tok/$name.gz") ;;
            split) src=$(first_file "$FROM/$name" "$FROM/data/task1/image_splits/$name") ;;
        esac || return 1
        case $src:$out in
            *.gz:*.gz) cp -- "$src" "$out" ;;
            *:*.gz) gzip -nc -- "$src" >"$out" ;;
            *.gz:*) gzip -dc -- "$src" >"$out" ;;
            *) cp -- "$src" "$out" ;;
        esac
    else
        if [ "$kind" = tok ]; then
            download "$BASE_URL/$dir/$name" "$out.plain" || { rm -f "$out.plain"; return 1; }
            gzip -n <"$out.plain" >"$out" && rm -f "$out.plain"
        else
            download "$BASE_URL/$dir/$name" "$out"
        fi
    fi
}

# get KIND NAME DESTFILE COUNT REQUIRED: make DESTFILE hold NAME with COUNT lines
N_KEPT=0 N_GOT=0 N_MISSING=0
get() {
    local kind=$1 name=$2 out=$3 want=$4 required=$5 tmp have
    if [ -f "$out" ] && [ "$(lines "$out" 2>/dev/null || echo x)" = "$want" ]; then
        N_KEPT=$((N_KEPT + 1))
        return 0
    fi
    tmp=${out%/*}/.tmp.$$.${out##*/} # keeps the suffix: fetch gzips for .gz
    if ! fetch "$kind" "$name" "$tmp"; then
        rm -f "$tmp"
        if [ "$required" = 1 ]; then
            die "cannot get $name (${FROM:-$BASE_URL}); without internet, pass" \
                "--from DIR or set MULTI30K_DIR to a local copy"
        fi
        say "warning: $name not found (${FROM:-$BASE_URL}), skipped"
        N_MISSING=$((N_MISSING + 1))
        return 0
    fi
    case $tmp in *.gz) gzip -t "$tmp" 2>/dev/null || { rm -f "$tmp"; die "$name: corrupt gzip"; } ;; esac
    have=$(lines "$tmp")
    [ "$have" = "$want" ] || { rm -f "$tmp"; die "$name has $have lines, expected $want"; }
    mv -f -- "$tmp" "$out"
    N_GOT=$((N_GOT + 1))
}

# -------------------------------------------------------------- the files
if [ -n "$FROM" ]; then say "copying from $FROM into $DEST"
else say "downloading from $BASE_URL into $DEST"; fi

for entry in $SPLITS; do
    split=${entry%%:*} want=${entry#*:}
    langs="en de fr"
    case $split in train|val|test_2016_flickr) langs="$langs cs" ;; esac
    for lang in $langs; do
        get raw "$split.$lang.gz" "$DEST/$split.$lang.gz" "$want" 1
        get tok "$split.lc.norm.tok.$lang" "$DEST/tok/$split.lc.norm.tok.$lang.gz" "$want" 1
    done
    get split "$split.txt" "$DEST/$split.txt" "$want" 0
done

# ---------------------------------------------------------------- report
verb=downloaded; [ -z "$FROM" ] || verb=copied
say "$verb $N_GOT files, kept $N_KEPT already present, $N_MISSING optional missing"
for entry in $SPLITS; do
    say "  ${entry%%:*}: ${entry#*:} lines in every language (checked)"
done
say "done: $DEST"
