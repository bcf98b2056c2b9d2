package io.ptune.internal;

import com.fasterxml.jackson.core.JsonProcessingException;
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

    private JsonFiles() {}

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
            node = MAPPER.readTree(Files.readAllBytes(file));
        } catch (NoSuchFileException e) {
            throw error.apply(file + " does not exist; " + whatToDo, e);
        } catch (JsonProcessingException e) {
            throw error.apply(file + " is not valid JSON: " + e.getOriginalMessage()
                    + " (line " + e.getLocation().getLineNr() + ")", e);
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
