package io.ptune.data;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.DatasetException;
import io.ptune.internal.JsonFiles;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.PushbackInputStream;
import java.nio.charset.CharacterCodingException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * An Alpaca-style instruction dataset: records with {@code instruction}, optional {@code input}
 * and {@code output}, stored either as one JSON array (Stanford Alpaca's {@code alpaca_data.json})
 * or as JSON Lines (one object per line). The format is recognised by the first non-blank
 * character ({@code [} or {@code {}).
 *
 * @param source the file the examples came from
 * @param examples the examples, in file order
 */
public record AlpacaDataset(Path source, List<AlpacaExample> examples) {

    public AlpacaDataset {
        examples = List.copyOf(examples);
    }

    /**
     * Reads a dataset file.
     *
     * @throws DatasetException naming the file and row if it is missing, empty or malformed
     */
    public static AlpacaDataset load(Path file) {
        Objects.requireNonNull(file, "file");
        List<AlpacaExample> examples = new ArrayList<>();
        try (InputStream raw = Files.newInputStream(file);
                PushbackInputStream in = new PushbackInputStream(raw, 4)) {
            int first = firstNonBlank(in);
            if (first == -1) {
                throw new DatasetException(file + " is empty; give a JSON array or JSON Lines file of"
                        + " {\"instruction\", \"input\", \"output\"} records");
            }
            in.unread(first);
            if (first == '[') {
                readArray(file, in, examples);
            } else if (first == '{') {
                readJsonLines(file, in, examples);
            } else {
                throw new DatasetException(file + " is neither a JSON array nor JSON Lines (it starts"
                        + " with '" + (char) first + "'); give {\"instruction\", \"input\", \"output\"} records");
            }
        } catch (NoSuchFileException e) {
            throw new DatasetException("dataset file " + file + " does not exist", e);
        } catch (CharacterCodingException e) {
            throw Utf8.notUtf8(file, e);
        } catch (IOException e) {
            throw new DatasetException("cannot read dataset " + file + ": " + e.getMessage(), e);
        }
        if (examples.isEmpty()) {
            throw new DatasetException(file + " contains no examples");
        }
        return new AlpacaDataset(file, examples);
    }

    public int size() {
        return examples.size();
    }

    public AlpacaExample get(int i) {
        return examples.get(i);
    }

    /** The first {@code n} examples (all of them when there are fewer). */
    public AlpacaDataset head(int n) {
        return new AlpacaDataset(source, examples.subList(0, Math.min(n, examples.size())));
    }

    /** Examples {@code [from, to)}. */
    public AlpacaDataset slice(int from, int to) {
        return new AlpacaDataset(source, examples.subList(from, to));
    }

    private static void readArray(Path file, InputStream in, List<AlpacaExample> out) throws IOException {
        // Streamed element by element: the 52k-row Alpaca file never exists as one JSON tree.
        try (JsonParser parser = JsonFiles.MAPPER.getFactory().createParser(in)) {
            parser.nextToken(); // START_ARRAY
            int row = 0;
            while (true) {
                JsonToken token;
                try {
                    token = parser.nextToken();
                } catch (JsonProcessingException e) {
                    throw rowError(file, "after row " + row, e);
                }
                if (token == JsonToken.END_ARRAY) {
                    break;
                }
                if (token == null) {
                    throw new DatasetException(file + ": the JSON array is not closed (truncated file?)");
                }
                row++;
                JsonNode node;
                try {
                    node = parser.readValueAsTree();
                } catch (JsonProcessingException e) {
                    throw rowError(file, "row " + row, e);
                }
                out.add(toExample(file, "row " + row, node));
            }
        }
    }

    private static void readJsonLines(Path file, InputStream in, List<AlpacaExample> out) throws IOException {
        BufferedReader reader = new BufferedReader(Utf8.strictReader(in));
        String line;
        int lineNumber = 0;
        while ((line = reader.readLine()) != null) {
            lineNumber++;
            if (line.isBlank()) {
                continue;
            }
            JsonNode node;
            try {
                node = JsonFiles.MAPPER.readTree(line);
            } catch (JsonProcessingException e) {
                throw new DatasetException(file + ": line " + lineNumber + " " + JsonFiles.describe(e), e);
            }
            out.add(toExample(file, "line " + lineNumber, node));
        }
    }

    /** A row that does not parse; bytes that are not UTF-8 are reported as such. */
    private static DatasetException rowError(Path file, String where, JsonProcessingException e) {
        if (e.getOriginalMessage() != null && e.getOriginalMessage().startsWith("Invalid UTF-8")) {
            return new DatasetException(file + " is not UTF-8 text: " + e.getOriginalMessage() + " at line "
                    + e.getLocation().getLineNr() + "; convert the file to UTF-8 (e.g. iconv -f <its encoding>"
                    + " -t UTF-8)", e);
        }
        return new DatasetException(file + ": " + where + " " + JsonFiles.describe(e), e);
    }

    private static AlpacaExample toExample(Path file, String where, JsonNode node) {
        if (node == null || !node.isObject()) {
            throw new DatasetException(file + ": " + where + " must be a JSON object with"
                    + " \"instruction\", \"input\" and \"output\", got " + abbreviate(node));
        }
        String instruction = field(file, where, node, "instruction", true);
        String input = field(file, where, node, "input", false);
        String output = field(file, where, node, "output", true);
        return new AlpacaExample(instruction, input, output);
    }

    /** "input" may be missing (many Alpaca variants drop it when empty); the others may not. */
    private static String field(Path file, String where, JsonNode node, String name, boolean required) {
        JsonNode value = node.get(name);
        if (value == null || value.isNull()) {
            if (required) {
                throw new DatasetException(file + ": " + where + " has no \"" + name + "\" field; every"
                        + " record needs \"instruction\" and \"output\" (\"input\" is optional)");
            }
            return "";
        }
        if (!value.isTextual()) {
            throw new DatasetException(file + ": " + where + ": \"" + name + "\" must be a string, got "
                    + abbreviate(value));
        }
        return value.asText();
    }

    private static String abbreviate(JsonNode node) {
        String text = String.valueOf(node);
        return text.length() > 80 ? text.substring(0, 77) + "..." : text;
    }

    private static int firstNonBlank(PushbackInputStream in) throws IOException {
        int b = in.read();
        // Skip a UTF-8 byte order mark.
        if (b == 0xEF) {
            int b2 = in.read();
            int b3 = in.read();
            if (b2 == 0xBB && b3 == 0xBF) {
                b = in.read();
            } else {
                in.unread(b3);
                in.unread(b2);
            }
        }
        while (b != -1 && Character.isWhitespace(b)) {
            b = in.read();
        }
        return b;
    }
}
