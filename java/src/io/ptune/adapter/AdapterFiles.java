package io.ptune.adapter;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.AdapterException;
import io.ptune.ModelFormatException;
import io.ptune.adapter.Safetensors.FloatTensor;
import io.ptune.adapter.Safetensors.SafetensorsFile;
import io.ptune.internal.FileTrees;
import io.ptune.internal.JsonFiles;
import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;

/** Reading and atomically writing the files of an adapter directory. Public for io.ptune.inspect; not part of the API. */
public final class AdapterFiles {

    static final String CONFIG_FILE = "adapter_config.json";
    static final String WEIGHTS_FILE = "adapter_model.safetensors";

    /** Every file an adapter save may write; stale ones are removed when a directory is reused. */
    static final Set<String> MANAGED_FILES = Set.of(CONFIG_FILE, WEIGHTS_FILE,
            PromptAdapter.P_TUNING_ENCODER_FILE, PromptAdapter.PREFIX_ENCODER_FILE, PromptAdapter.COMPOSITE_FILE,
            PromptAdapter.DYNAMIC_FILE, PromptAdapter.LAYERS_FILE, PromptAdapter.CLASSIFIER_FILE,
            PromptAdapter.HEAD_FILE, PromptAdapter.SOFT_VERBALIZER_FILE);

    private AdapterFiles() {}

    /** Writes one file of the adapter into the temporary directory. */
    @FunctionalInterface
    interface FileWriter {
        void write(Path file) throws IOException;
    }

    /**
     * Writes {@code files} (name -> writer) into {@code dir} atomically: everything is written into
     * a temporary directory beside {@code dir} first, so a failure leaves nothing half-written. A
     * missing or empty {@code dir} is replaced by one rename; in a directory that already holds
     * files, each adapter file is replaced by an atomic rename (the config last, so a reader that
     * sees the new config sees the new weights) and adapter files of an earlier save that this one
     * does not write are removed first.
     */
    static void writeAtomically(Path dir, Map<String, FileWriter> files) {
        Path target = dir.toAbsolutePath().normalize();
        if (Files.exists(target) && !Files.isDirectory(target)) {
            throw new AdapterException(target + " exists and is not a directory; choose another --out");
        }
        Path temp = null;
        try {
            Files.createDirectories(target.getParent());
            temp = Files.createTempDirectory(target.getParent(), "." + target.getFileName() + ".tmp-");
            for (Map.Entry<String, FileWriter> file : files.entrySet()) {
                file.getValue().write(temp.resolve(file.getKey()));
            }
            FileTrees.syncTree(temp);
            if (!Files.exists(target) || isEmptyDirectory(target)) {
                Files.deleteIfExists(target);
                FileTrees.moveAtomically(temp, target);
                temp = null;
                FileTrees.syncDirectory(target.getParent());
            } else {
                for (String stale : MANAGED_FILES) {
                    // The config goes too when this save has none (a head without a prompt).
                    if (!files.containsKey(stale)) {
                        Files.deleteIfExists(target.resolve(stale));
                    }
                }
                for (String name : files.keySet()) {
                    if (!name.equals(CONFIG_FILE)) {
                        FileTrees.moveAtomically(temp.resolve(name), target.resolve(name));
                    }
                }
                if (files.containsKey(CONFIG_FILE)) {
                    FileTrees.moveAtomically(temp.resolve(CONFIG_FILE), target.resolve(CONFIG_FILE));
                }
                FileTrees.syncDirectory(target);
            }
        } catch (IOException e) {
            throw new AdapterException("cannot write the adapter to " + target + ": " + whyNotWritable(target, e)
                    + "; the previous adapter there (if any) is unchanged; choose another --out (a folder you can"
                    + " write to) or free space", e);
        } finally {
            if (temp != null) {
                FileTrees.deleteOrWarn(temp);
            }
        }
    }

    /** Why {@code target} could not be written, in words: a file in the way, no permission, ... */
    private static String whyNotWritable(Path target, IOException e) {
        Optional<String> space = FileTrees.spaceProblem(e);
        if (space.isPresent()) {
            return space.get();
        }
        for (Path p = target.getParent(); p != null; p = p.getParent()) {
            if (Files.exists(p) && !Files.isDirectory(p)) {
                return p + " is a file, not a folder";
            }
        }
        if (e instanceof AccessDeniedException) {
            return "permission denied on " + e.getMessage();
        }
        if (e instanceof FileSystemException fs && fs.getFile() != null) {
            return "the file system refuses to create " + fs.getFile() + " ("
                    + (fs.getReason() != null ? fs.getReason() : e.getClass().getSimpleName()) + ")";
        }
        return e.toString();
    }

    /** The adapter directory's adapter_config.json, with errors that say what to pass instead. */
    static JsonNode readConfig(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new AdapterException("adapter directory " + dir + " does not exist; pass the folder"
                    + " that holds adapter_config.json and adapter_model.safetensors");
        }
        Path configFile = dir.resolve(CONFIG_FILE);
        if (!Files.isRegularFile(configFile)) {
            throw new AdapterException(dir + " has no " + CONFIG_FILE + "; is it a PEFT adapter"
                    + " directory (what `ptune train --out` or PEFT's save_pretrained writes)?");
        }
        return JsonFiles.readObject(configFile, AdapterException::new, "");
    }

    /** Opens a safetensors file of the adapter; a missing or corrupt file is an AdapterException. */
    static SafetensorsFile open(Path file, String hintWhenMissing) {
        if (!Files.isRegularFile(file)) {
            throw new AdapterException(file.getParent() + " has no " + file.getFileName() + hintWhenMissing);
        }
        try {
            return Safetensors.open(file);
        } catch (ModelFormatException e) {
            throw new AdapterException(e.getMessage(), e);
        }
    }

    /** Reads a float tensor that must have {@code shape}; {@code what} explains the expected shape. */
    static float[] readTensor(SafetensorsFile file, String name, long[] shape, String what) {
        if (!file.tensors().containsKey(name)) {
            throw new AdapterException(file.path() + " has no tensor '" + name + "'; it holds "
                    + file.tensors().keySet());
        }
        FloatTensor tensor;
        try {
            tensor = file.readFloat(name);
        } catch (ModelFormatException e) {
            throw new AdapterException(e.getMessage(), e);
        }
        if (!Arrays.equals(tensor.shape(), shape)) {
            throw new AdapterException(file.path() + ": tensor " + name + " has shape "
                    + Arrays.toString(tensor.shape()) + " but " + what + " (" + Arrays.toString(shape)
                    + " expected); was this adapter trained for another model?");
        }
        for (int i = 0; i < tensor.data().length; i++) {
            if (!Float.isFinite(tensor.data()[i])) {
                throw new AdapterException(file.path() + ": tensor " + name + " holds a non-finite value ("
                        + tensor.data()[i] + ") at index " + i);
            }
        }
        return tensor.data();
    }

    /** The string {@code field} of a JSON config, or null when absent; anything else fails naming the file. */
    public static String textField(JsonNode config, String field, Path file) {
        JsonNode node = config.get(field);
        if (JsonFiles.isAbsent(node)) {
            return null;
        }
        if (!node.isTextual()) {
            throw new AdapterException(file + ": field '" + field + "' must be a string, got " + node);
        }
        return node.asText();
    }

    static Integer optionalInt(JsonNode config, String field, Path file) {
        JsonNode node = config.get(field);
        if (JsonFiles.isAbsent(node)) {
            return null;
        }
        if (!node.isIntegralNumber() || !node.canConvertToInt()) {
            throw new AdapterException(file + ": field '" + field + "' must be an integer, got " + node);
        }
        return node.intValue();
    }

    /** The positive integer {@code field} of a JSON config; missing or anything else fails naming the file. */
    public static int requiredPositiveInt(JsonNode config, String field, Path file) {
        Integer value = optionalInt(config, field, file);
        if (value == null) {
            throw new AdapterException(file + ": field '" + field + "' is required but missing");
        }
        if (value <= 0) {
            throw new AdapterException(file + ": field '" + field + "' must be positive, got " + value
                    + (field.equals("num_virtual_tokens") ? " (a prompt or prefix of length 0 does nothing)" : ""));
        }
        return value;
    }

    static Boolean optionalBoolean(JsonNode config, String field, Path file) {
        JsonNode node = config.get(field);
        if (JsonFiles.isAbsent(node)) {
            return null;
        }
        if (!node.isBoolean()) {
            throw new AdapterException(file + ": field '" + field + "' must be true or false, got " + node);
        }
        return node.booleanValue();
    }

    static Double optionalNumber(JsonNode config, String field, Path file) {
        JsonNode node = config.get(field);
        if (JsonFiles.isAbsent(node)) {
            return null;
        }
        if (!node.isNumber()) {
            throw new AdapterException(file + ": field '" + field + "' must be a number, got " + node);
        }
        return node.doubleValue();
    }

    private static boolean isEmptyDirectory(Path dir) throws IOException {
        try (Stream<Path> entries = Files.list(dir)) {
            return entries.findAny().isEmpty();
        }
    }
}
