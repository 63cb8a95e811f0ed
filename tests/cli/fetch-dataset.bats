load helpers

# The whole chain (curl, MD5, tar, imgresize, dsplit) on tiny archives in the published layouts,
# served by file:// URLs (tests/fixtures/img/{flowers,pets}, made by gen_img.py).
setup() {
    setup_tools
    IMG="$FIX/img"
    md5() { md5sum "$1" | cut -d' ' -f1; }
    export FLOWERS_URL="file://$IMG/flowers" PETS_URL="file://$IMG/pets"
    FLOWERS_TGZ_MD5=$(md5 "$IMG/flowers/102flowers.tgz")
    FLOWERS_LABELS_MD5=$(md5 "$IMG/flowers/imagelabels.mat")
    FLOWERS_SETID_MD5=$(md5 "$IMG/flowers/setid.mat")
    PETS_IMAGES_MD5=$(md5 "$IMG/pets/images.tar.gz")
    PETS_ANNOTATIONS_MD5=$(md5 "$IMG/pets/annotations.tar.gz")
    export FLOWERS_TGZ_MD5 FLOWERS_LABELS_MD5 FLOWERS_SETID_MD5 PETS_IMAGES_MD5 PETS_ANNOTATIONS_MD5
    D="$BATS_TEST_TMPDIR/data"
}

payload() {
    local n
    n=$(od -An -tu2 -j8 -N2 --endian=little "$1" | tr -d ' ')
    tail -c +$((10 + n + 1)) "$1"
}
shape() { head -c 256 "$1" | tr -d '\0' | grep -ao "'shape': ([0-9, ]*)" | sed "s/'shape': //"; }
rows() { shape "$1" | sed 's/(\([0-9]*\).*/\1/'; }
int64s() { payload "$1" | od -An -v -td8 --endian=little | xargs; }

@test "fetch-dataset --help names every option and an example" {
    help_names_options fetch-dataset tools/fetch-dataset
}

@test "fetch-dataset --help prints usage on stdout" {
    run -0 --separate-stderr fetch-dataset --help
    [[ "$output" == "usage: fetch-dataset "* ]]
    [ -z "$stderr" ]
}

@test "fetch-dataset rejects bad usage with exit 2" {
    run -2 --separate-stderr fetch-dataset
    [[ "$stderr" == "usage: fetch-dataset "* ]]
    run -2 --separate-stderr fetch-dataset -d "$D" cifar10
    [[ "$stderr" == "fetch-dataset: unknown data set 'cifar10'"* ]]
    run -2 --separate-stderr fetch-dataset -d "$D" -s x flowers102
    run -2 --separate-stderr fetch-dataset -d "$D" --bogus flowers102
    [ ! -e "$D" ]
}

@test "fetch-dataset flowers102: download, check, unpack, resize (trnid), split 70/15/15" {
    run -0 --separate-stderr fetch-dataset -d "$D" -s 16 flowers102
    [ -z "$output" ]
    cmp <(payload "$D/flowers102-16.npy") <(payload "$IMG/flowers/trn_16.npy")
    cmp <(payload "$D/flowers102-16-labels.npy") <(payload "$IMG/flowers/trn_labels.npy")
    # stratified, totals as unstratified (28 / 6 / 6): 10 per class -> 7 / 1 or 2 / 2 or 1
    [ "$(shape "$D/flowers102-16-train.npy")" = "(28, 16, 16, 3)" ]
    [ "$(shape "$D/flowers102-16-val.npy")" = "(6, 16, 16, 3)" ]
    [ "$(shape "$D/flowers102-16-test.npy")" = "(6, 16, 16, 3)" ]
    [ "$(int64s "$D/flowers102-16-val-labels.npy" | tr ' ' '\n' | sort -u | xargs)" = "0 1 2 3" ]
    [ "$(int64s "$D/flowers102-16-test-labels.npy" | tr ' ' '\n' | sort -u | xargs)" = "0 1 2 3" ]
    cmp "$D/flowers102/102flowers.tgz" "$IMG/flowers/102flowers.tgz"
    [ -f "$D/flowers102/jpg/image_00048.jpg" ]
    [ -z "$(find "$D" -name '*.part' -o -name '.unpack*' -o -name '*.npy.*')" ]
}

@test "fetch-dataset is idempotent: a rerun needs no network and changes nothing" {
    fetch-dataset -d "$D" -s 16 flowers102 2> /dev/null
    cp "$D/flowers102-16-train.npy" "$BATS_TEST_TMPDIR/before.npy"
    FLOWERS_URL=file:///nonexistent run -0 --separate-stderr fetch-dataset -d "$D" -s 16 flowers102
    [ -z "$stderr" ]
    cmp "$D/flowers102-16-train.npy" "$BATS_TEST_TMPDIR/before.npy"
}

@test "fetch-dataset resumes a partial download" {
    mkdir -p "$D/flowers102"
    head -c 1000 "$IMG/flowers/102flowers.tgz" > "$D/flowers102/102flowers.tgz.part"
    run -0 --separate-stderr fetch-dataset -d "$D" -s 16 flowers102
    cmp "$D/flowers102/102flowers.tgz" "$IMG/flowers/102flowers.tgz"
    [ ! -e "$D/flowers102/102flowers.tgz.part" ]
    # a .part that is already complete is accepted by its checksum
    rm -rf "$D"
    mkdir -p "$D/flowers102"
    cp "$IMG/flowers/setid.mat" "$D/flowers102/setid.mat.part"
    run -0 --separate-stderr fetch-dataset -d "$D" -s 16 flowers102
    cmp "$D/flowers102/setid.mat" "$IMG/flowers/setid.mat"
}

@test "fetch-dataset with a wrong MD5 fails clearly and leaves nothing" {
    FLOWERS_TGZ_MD5=0123456789abcdef0123456789abcdef run -1 --separate-stderr \
        fetch-dataset -d "$D" -s 16 flowers102
    [ -z "$output" ]
    [[ "$stderr" == *"fetch-dataset: file://$IMG/flowers/102flowers.tgz: MD5 $FLOWERS_TGZ_MD5, want 0123456789abcdef0123456789abcdef: download removed" ]]
    [ -z "$(find "$D" -type f)" ]
}

@test "fetch-dataset with an unreachable URL fails with exit 1" {
    FLOWERS_URL=file:///nonexistent run -1 --separate-stderr fetch-dataset -d "$D" flowers102
    [ -z "$output" ]
    [[ "$stderr" == *"fetch-dataset: file:///nonexistent/102flowers.tgz: download failed"* ]]
    [ -z "$(find "$D" -type f)" ]
}

@test "fetch-dataset pets: trainval with CMYK, gray and PNG files; breeds under 100 dropped" {
    run -0 --separate-stderr fetch-dataset -d "$D" -s 8 pets
    [ -z "$output" ]
    [ "$(shape "$D/pets-8.npy")" = "(103, 8, 8, 3)" ]
    [ "$(int64s "$D/pets-8-labels.npy" | tr ' ' '\n' | sort | uniq -c | xargs)" = "100 0 3 1" ]
    [ "$(rows "$D/pets-8-train.npy") $(rows "$D/pets-8-val.npy") $(rows "$D/pets-8-test.npy")" = "70 15 15" ]
    for s in train val test; do
        [ -z "$(int64s "$D/pets-8-$s-labels.npy" | tr ' ' '\n' | grep -v '^0$')" ]
    done
    [ -d "$D/pets/images" ]
    [ -f "$D/pets/annotations/trainval.txt" ]
}

@test "fetch-dataset redoes the split when its options change, not otherwise" {
    fetch-dataset -d "$D" -s 8 pets 2> /dev/null
    [ "$(rows "$D/pets-8-train.npy") $(rows "$D/pets-8-val.npy") $(rows "$D/pets-8-test.npy")" = "70 15 15" ]
    # a rerun with the same options keeps the split files as they are
    touch -d '2000-01-01' "$D/pets-8-train.npy"
    run -0 --separate-stderr fetch-dataset -d "$D" -s 8 pets
    [ -z "$stderr" ]
    [ "$(stat -c %Y "$D/pets-8-train.npy")" = "$(date -d '2000-01-01' +%s)" ]
    # keeping the breed of 3 images: the old split (breed dropped) must not be reused
    PETS_MIN_CLASS_COUNT=3 run -0 --separate-stderr fetch-dataset -d "$D" -s 8 pets
    [[ "$stderr" == *"splitting into"* ]]
    n=$(( $(rows "$D/pets-8-train.npy") + $(rows "$D/pets-8-val.npy") + $(rows "$D/pets-8-test.npy") ))
    [ "$n" -eq 103 ]
    [ -n "$(int64s "$D/pets-8-train-labels.npy" | tr ' ' '\n' | grep '^1$')" ]
    [ -z "$(find "$D" -name '*.tmp')" ]
}
