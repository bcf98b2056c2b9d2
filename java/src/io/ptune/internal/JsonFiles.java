package io.ptune.internal;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.exc.StreamConstraintsException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.function.BiFunction;

/**
 * Reading the small JSON files of model and adapter directories with errors that name the file.
 * Not part of the public API.
 */
public final class JsonFiles {
    /** One mapper for the whole library: it is thread-safe once configured. */
    public static final ObjectMapper MAPPER =
            new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /**
     * The largest JSON file of a model or adapter directory read whole (config.json and
     * adapter_config.json have a few kilobytes, the largest tokenizer.json files tens of
     * megabytes); a bigger one is refused before it is read into memory.
     */
    public static final long MAX_FILE_BYTES = 256L * 1024 * 1024;

    private JsonFiles() {}

    /**
     * What is wrong with JSON text that did not parse, for a message after the file name: "is not
     * valid JSON: ... (line N)", or, past one of Jackson's reading limits (e.g. nesting deeper
     * than 1000 levels, a number of more than 1000 digits), which limit it exceeds.
     */
    public static String describe(JsonProcessingException e) {
        String where = e.getLocation() == null ? "" : " (line " + e.getLocation().getLineNr() + ")";
        if (e instanceof StreamConstraintsException) {
            return "exceeds a limit of the JSON reader" + where + ": " + e.getOriginalMessage()
                    + "; no valid file nests or grows like that, so it is corrupt or not the file meant";
        }
        return "is not valid JSON: " + e.getOriginalMessage() + where;
    }

    /**
     * Parses {@code file} as a JSON object.
     *
     * @param error builds the exception type the caller reports (message, cause)
     * @param whatToDo appended to "missing file" errors, e.g. "point --model at a Hugging Face
     *     model directory"
     */
    public static <E extends RuntimeException> JsonNode readObject(
            Path file, BiFunction<String, Throwable, E> error, String whatToDo) {
        JsonNode node;
        try {
            long size = Files.size(file);
            if (size > MAX_FILE_BYTES) {
                throw error.apply(file + " has " + size + " bytes, more than the " + MAX_FILE_BYTES
                        + " a JSON file of a model or adapter can have; is it the right file?", null);
            }
            node = MAPPER.readTree(Files.readAllBytes(file));
        } catch (NoSuchFileException e) {
            throw error.apply(file + " does not exist; " + whatToDo, e);
        } catch (JsonProcessingException e) {
            throw error.apply(file + " " + describe(e), e);
        } catch (IOException e) {
            throw error.apply("cannot read " + file + ": " + e, e);
        }
        if (node == null || !node.isObject()) {
            throw error.apply(file + " must contain a JSON object", null);
        }
        return node;
    }

    /** A JSON null, a missing key and an explicit null all read as absent. */
    public static boolean isAbsent(JsonNode node) {
        return node == null || node.isNull() || node.isMissingNode();
    }
}
