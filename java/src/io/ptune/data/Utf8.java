package io.ptune.data;

import io.ptune.DatasetException;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.Reader;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Dataset files are UTF-8: a byte sequence that is not UTF-8 is an error naming the line, never
 * silently replaced (which would train on U+FFFD instead of the text). Not part of the API.
 */
final class Utf8 {
    private Utf8() {}

    /** A reader that throws {@link CharacterCodingException} at the first malformed byte. */
    static Reader strictReader(InputStream in) {
        return new InputStreamReader(in, decoder());
    }

    private static CharsetDecoder decoder() {
        return StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
    }

    /**
     * The error for {@code file} after a decoder refused it: it names the line and byte offset of
     * the first malformed sequence and what to do.
     */
    static DatasetException notUtf8(Path file, CharacterCodingException cause) {
        return new DatasetException(file + " is not UTF-8 text: " + firstMalformed(file)
                + " is not a UTF-8 sequence; convert the file to UTF-8 (e.g. iconv -f <its encoding> -t UTF-8)",
                cause);
    }

    /** "line L (byte offset B)" of the first malformed byte, found by decoding the file again. */
    private static String firstMalformed(Path file) {
        CharsetDecoder decoder = decoder();
        long offset = 0;
        long line = 1;
        ByteBuffer bytes = ByteBuffer.allocate(1 << 16);
        CharBuffer chars = CharBuffer.allocate(1 << 16);
        try (InputStream in = Files.newInputStream(file)) {
            boolean eof = false;
            while (true) {
                int read = eof ? -1 : in.read(bytes.array(), bytes.position(), bytes.remaining());
                if (read < 0) {
                    eof = true;
                } else {
                    bytes.position(bytes.position() + read);
                }
                bytes.flip();
                int before = bytes.position();
                CoderResult result = decoder.decode(bytes, chars, eof);
                for (long i = before; i < bytes.position(); i++) {
                    if (bytes.get((int) i) == '\n') {
                        line++;
                    }
                }
                offset += bytes.position() - before;
                if (result.isError() || (eof && bytes.hasRemaining())) {
                    return "line " + line + " (byte offset " + offset + ")";
                }
                if (eof) {
                    return "a byte";  // the first pass failed but this one did not: the file changed
                }
                bytes.compact();
                chars.clear();
            }
        } catch (IOException e) {
            return "a byte";
        }
    }
}
