#!/bin/sh
# ffmpeg: a generated test source (testsrc2 video, a sine and noise audio)
# encoded to several codecs with -threads 2 (H.264, VP9, MPEG-4, MJPEG,
# FFV1; AAC, Opus, FLAC), each output decoded again to framemd5, and a
# filter graph (scale, overlay, histogram).  Bit-exact flags everywhere:
# the encoders are deterministic, so every file and every decoded frame must
# be identical whichever allocator ran.  Prints md5s.  Runs in the current
# directory.
set -eu
D=${STRATA_OVERRIDE_FFMPEG_SECONDS:-6}
ff() { ffmpeg -hide_banner -nostdin -loglevel error -y "$@"; }
V="-f lavfi -i testsrc2=size=640x360:rate=25:duration=$D"
A="-f lavfi -i sine=frequency=440:sample_rate=48000:duration=$D"
BX="-fflags +bitexact -flags:v +bitexact -flags:a +bitexact -map_metadata -1"
ff $V $A -threads 2 -c:v libx264 -preset fast -crf 26 -c:a aac -b:a 96k $BX h264.mp4
ff $V $A -threads 2 -c:v libvpx-vp9 -deadline good -cpu-used 8 -b:v 500k -row-mt 1 -tile-columns 1 -c:a libopus $BX vp9.webm
ff $V -threads 2 -c:v mpeg4 -q:v 5 $BX mpeg4.avi
ff $V -threads 2 -c:v mjpeg -q:v 4 $BX mjpeg.avi
ff $V $A -threads 2 -c:v ffv1 -level 3 -slices 4 -c:a flac $BX ffv1.mkv
ff $V -threads 2 -filter_complex "[0:v]split[a][b];[a]scale=320:180,hflip[s];[b][s]overlay=10:10,format=yuv420p" -c:v mpeg2video -q:v 4 $BX filt.mpg
for f in h264.mp4 vp9.webm mpeg4.avi mjpeg.avi ffv1.mkv filt.mpg; do
  ff -threads 2 -i "$f" $BX -f framemd5 "$f.framemd5"
  echo "$f: $(wc -c < "$f") bytes, file $(md5sum < "$f" | cut -d' ' -f1)," \
       "$(grep -vc '^#' "$f.framemd5") frames, framemd5 $(md5sum < "$f.framemd5" | cut -d' ' -f1)"
done
# Decoded and rescaled to a different size and pixel format.
ff -threads 2 -i h264.mp4 -vf scale=1280:720:flags=bicubic,format=yuv444p $BX -f framemd5 up.framemd5
echo "h264 upscaled: framemd5 $(md5sum < up.framemd5 | cut -d' ' -f1)"
