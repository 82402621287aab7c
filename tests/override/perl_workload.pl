# Allocation-heavy Perl workload with a deterministic output: hashes of
# strings and arrays, string building, regexes, sort, split/join, sprintf,
# pack, nested structures, and their destruction.  The size knob is the
# first argument (default 1).  Prints one line per phase with a checksum.
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);

my $scale = shift // 1;
my $N = int(200_000 * $scale);

sub ck { substr(md5_hex(join("\x1f", @_)), 0, 16) }

# Hashes: build, grow values, delete a third, rebuild from the survivors.
my %h;
for my $i (1 .. $N) {
    my $k = sprintf("key-%07d-%s", ($i * 7919) % 1_000_003, "x" x ($i % 37));
    $h{$k} = [$i, "v" x ($i % 61), { n => $i, s => "$i" x ($i % 5) }];
}
for my $i (1 .. $N) {
    next unless $i % 3 == 0;
    delete $h{sprintf("key-%07d-%s", ($i * 7919) % 1_000_003, "x" x ($i % 37))};
}
my @keys = sort keys %h;
my %g = map { $_ => scalar(@{$h{$_}}) + length($h{$_}[1]) } @keys;
print "hash ", scalar(keys %h), " ", ck(@keys[grep { $_ % 997 == 0 } 0 .. $#keys]), "\n";
%h = ();

# String building: append, substr, reverse, join/split.
my $s = "";
for my $i (1 .. $N) {
    $s .= sprintf("%x,", $i * 2654435761 % 4294967296);
    $s = substr($s, 1000) if length($s) > 3_000_000;
}
my @parts = split /,/, $s;
my $j = join ";", reverse @parts;
print "string ", length($s), " ", scalar(@parts), " ", ck($j), "\n";

# Regexes: match, capture, substitute over a generated text.
my $text = join " ", map { "w" . ($_ % 1000) . "x" . ($_ % 7) . (($_ % 11) ? "" : "-Z$_") } 1 .. $N;
my %count;
$count{$1}++ while $text =~ /w(\d+)x[0-6]/g;
(my $t2 = $text) =~ s/-Z(\d+)/"<" . ($1 * 3) . ">"/ge;
my @zs = ($t2 =~ /<(\d+)>/g);
print "regex ", scalar(keys %count), " ", $count{42} // 0, " ", length($t2), " ", scalar(@zs), " ", ck(@zs[0 .. 99]), "\n";

# Sort: numeric, string, custom (Schwartzian transform).
my @nums = map { ($_ * 48271) % 2147483647 } 1 .. $N;
my @sn = sort { $a <=> $b } @nums;
my @ss = sort @nums;
my @st = map { $_->[1] } sort { $a->[0] <=> $b->[0] or $a->[1] cmp $b->[1] }
         map { [length($_), $_] } map { sprintf("%o", $_) } @nums;
print "sort ", ck(@sn[0 .. 50], @ss[0 .. 50], @st[0 .. 50], @st[-50 .. -1]), "\n";

# Nested structures: a tree of hashes and arrays, walked and freed.
my %tree;
for my $i (1 .. $N / 2) {
    my $node = \%tree;
    for my $part (split /\//, sprintf("%d/%d/%d", $i % 13, $i % 101, $i)) {
        $node = $node->{$part} //= {};
    }
    $node->{leaf} = [map { $_ * $i } 1 .. ($i % 9)];
}
my ($nodes, $sum) = (0, 0);
my @stack = (\%tree);
while (my $n = pop @stack) {
    for my $k (sort keys %$n) {
        if ($k eq "leaf") { $sum += $_ for @{$n->{leaf}} }
        else { $nodes++; push @stack, $n->{$k} }
    }
}
print "tree $nodes $sum\n";
undef %tree;

# pack/unpack and a growing list of records.
my @recs;
for my $i (1 .. $N) {
    push @recs, pack("NnA*", $i, $i % 65536, "r" x ($i % 23));
    shift @recs if @recs > 50_000;
}
my $tot = 0;
for (@recs) { my ($a, $b, $c) = unpack("NnA*", $_); $tot += $a + $b + length($c) }
print "pack ", scalar(@recs), " $tot\n";
