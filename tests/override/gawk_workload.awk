# Allocation-heavy gawk workload over a generated input (gawk.sh makes it):
# associative arrays keyed by fields and by built strings, string building,
# split/gsub/sprintf/substr, sorting with asort/asorti, deletion.  Prints
# one line per phase; the iteration order never depends on addresses
# (PROCINFO["sorted_in"] or asorti everywhere the order matters).
BEGIN { FS = "," }
{
    # Input line: id,user,city,amount,tags,text
    n++
    user[$2]++
    city_sum[$3] += $4
    pair[$2 SUBSEP $3] += 1
    nt = split($5, tg, ";")
    for (i = 1; i <= nt; i++) { tag[tg[i]]++; tag_user[tg[i], $2] = 1 }
    t = $6
    gsub(/[aeiou]/, "#", t)
    nw = split(t, w, " ")
    words += nw
    for (i = 1; i <= nw; i += 3) {
        v = vocab[w[i]] w[i + 1] "|"
        if (length(v) > 300) delete vocab[w[i]]
        else vocab[w[i]] = v
    }
    line[n % 20000] = sprintf("%08d:%s:%s", $1, toupper($2), substr($6, 1, 40))
    acc = acc substr($6, 1 + $1 % 7, 9)
    if (length(acc) > 1024) { chunks[nch++ % 8192] = acc; acc = "" }
}
END {
    PROCINFO["sorted_in"] = "@ind_str_asc"
    nu = 0; s = ""
    for (u in user) { nu++; if (nu % 500 == 0) s = s u "=" user[u] ";" }
    printf "users %d %d %s\n", nu, length(s), substr(s, 1, 120)
    nc = 0; tot = 0
    for (c in city_sum) { nc++; tot += city_sum[c] }
    printf "cities %d %.2f\n", nc, tot
    np = 0; for (p in pair) np++
    printf "pairs %d\n", np
    nt = 0; ntu = 0
    for (t in tag) nt++
    for (t in tag_user) ntu++
    printf "tags %d %d\n", nt, ntu
    nv = 0; vl = 0
    for (v in vocab) { nv++; vl += length(vocab[v]) }
    printf "vocab %d %d words %d\n", nv, vl, words
    m = asort(line, sorted)
    printf "lines %d %s %s\n", m, sorted[1], sorted[m]
    m = asorti(user, ukeys)
    j = ""
    for (i = 1; i <= m; i += 97) j = j ukeys[i]
    printf "users-sorted %d %d %s\n", m, length(j), substr(j, 1, 60)
    cl = 0; for (i in chunks) cl += length(chunks[i])
    printf "chunks %d %d %s\n", nch, cl, substr(chunks[0], 1, 60)
    # Rebuild: delete everything, then a second round of big strings.
    delete user; delete pair; delete tag_user; delete vocab
    for (i = 1; i <= 200000; i++) { k = sprintf("k%d-%s", i * 7919 % 100003, substr("abcdefghijklmnopqrstuvwxyz", 1 + i % 26)); big[k] = big[k] sprintf("%x", i) }
    nb = 0; bl = 0
    for (k in big) { nb++; bl += length(big[k]) }
    printf "rebuild %d %d\n", nb, bl
}
