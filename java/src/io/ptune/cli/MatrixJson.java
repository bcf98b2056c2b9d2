package io.ptune.cli;

import com.fasterxml.jackson.core.JsonGenerator;
import io.ptune.internal.JsonFiles;
import java.io.IOException;
import java.io.PrintWriter;

/**
 * {@code {"ids":[...],"virtual_tokens":n,"<field>":[[...],...]}}: what {@code logits} and
 * {@code embed} print, one row per position (virtual positions first). Streamed: a (P+T) x W matrix
 * as a tree would cost several times its size in objects. Floats are written with
 * {@link Float#toString(float)}, the shortest text that reads back as the same float.
 */
final class MatrixJson {
    private MatrixJson() {}

    static void write(PrintWriter out, long[] ids, int virtualTokens, String field, float[][] rows)
            throws IOException {
        try (JsonGenerator json = JsonFiles.MAPPER.getFactory().createGenerator(out)) {
            json.disable(JsonGenerator.Feature.AUTO_CLOSE_TARGET);
            json.writeStartObject();
            json.writeArrayFieldStart("ids");
            for (long id : ids) {
                json.writeNumber(id);
            }
            json.writeEndArray();
            json.writeNumberField("virtual_tokens", virtualTokens);
            json.writeArrayFieldStart(field);
            for (float[] row : rows) {
                json.writeStartArray();
                for (float value : row) {
                    json.writeNumber(value);
                }
                json.writeEndArray();
            }
            json.writeEndArray();
            json.writeEndObject();
        }
        out.println();
    }
}
