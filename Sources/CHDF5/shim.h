#ifndef AFUSION_CHDF5_SHIM_H
#define AFUSION_CHDF5_SHIM_H
/* HDF5 exposes most of its constants as macros that expand to global ids behind a library
   open call (H5OPEN ...) or to casts. Swift imports neither, so each one used from Swift gets a
   static inline accessor here, named after the macro with an `afh5_` prefix. */
#include <hdf5.h>

static inline hid_t afh5_P_DEFAULT(void) { return H5P_DEFAULT; }
static inline hid_t afh5_S_ALL(void) { return H5S_ALL; }
static inline hid_t afh5_P_DATASET_CREATE(void) { return H5P_DATASET_CREATE; }
static inline hid_t afh5_P_LINK_CREATE(void) { return H5P_LINK_CREATE; }
static inline hid_t afh5_P_FILE_ACCESS(void) { return H5P_FILE_ACCESS; }
static inline unsigned afh5_F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
static inline unsigned afh5_F_ACC_RDWR(void) { return H5F_ACC_RDWR; }
static inline unsigned afh5_F_ACC_TRUNC(void) { return H5F_ACC_TRUNC; }
static inline unsigned afh5_F_ACC_EXCL(void) { return H5F_ACC_EXCL; }
static inline hid_t afh5_T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t afh5_T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t afh5_T_NATIVE_INT32(void) { return H5T_NATIVE_INT32; }
static inline hid_t afh5_T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
static inline hid_t afh5_T_C_S1(void) { return H5T_C_S1; }
static inline size_t afh5_T_VARIABLE(void) { return H5T_VARIABLE; }

/* Silences HDF5's automatic error-stack printing; the Swift layer reports its own errors. */
static inline void afh5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* Number of attributes on an object; the info struct and call differ between 1.10 and 1.12+. */
static inline long long afh5_num_attrs(hid_t obj) {
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t info;
    if (H5Oget_info3(obj, &info, H5O_INFO_NUM_ATTRS) < 0) return -1;
#else
    H5O_info_t info;
    if (H5Oget_info2(obj, &info, H5O_INFO_NUM_ATTRS) < 0) return -1;
#endif
    return (long long)info.num_attrs;
}

#endif
